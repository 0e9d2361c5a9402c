"""The model every training method trains: a LoRA adapter on the base model, or all its weights."""

from __future__ import annotations

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import get_peft_model

from selfdistill import precision
from selfdistill.settings.training import LoraConfig, TrainingConfig


def trainable_model(model, lora: LoraConfig, training: TrainingConfig, seed: int = 0):
    """The model to train: a LoRA adapter on it, or all of its weights (`finetune: full`, as float32
    masters computing in the dtype the model was loaded in: `selfdistill.precision`); with
    `gradient_checkpointing`, activations are recomputed in backward (less memory, more compute).
    The adapter's random initialization comes from `seed` (the same on every training rank)."""
    torch.manual_seed(seed)
    if training.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if training.finetune == "full":
        model = precision.use_float32_masters(model).requires_grad_(True)
    else:
        model = add_lora(model, lora)
    require_float32_trainable(model)
    return model


def require_float32_trainable(model) -> None:
    """Every trainable weight must be float32 (or wider): AdamW steps of 1e-5 on bf16 weights mostly round away."""
    low = sorted({str(p.dtype) for p in model.parameters() if p.requires_grad and precision.is_low_precision(p.dtype)})
    if low:
        raise TypeError(
            f"trainable weights in {low}: an optimizer step of ~lr would round to no change for most of them; "
            "train float32 masters (selfdistill.precision.use_float32_masters) or a float32 LoRA adapter"
        )


def add_lora(model, lora: LoraConfig):
    config = PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)
