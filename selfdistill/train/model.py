"""The model every training method trains: a LoRA adapter on the base model, or all its weights."""

from __future__ import annotations

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import get_peft_model

from selfdistill.settings.training import LoraConfig, TrainingConfig


def trainable_model(model, lora: LoraConfig, training: TrainingConfig, seed: int = 0):
    """The model to train: a LoRA adapter on it, or all of its weights (`finetune: full`); with
    `gradient_checkpointing`, activations are recomputed in backward (less memory, more compute).
    The adapter's random initialization comes from `seed` (the same on every training rank)."""
    torch.manual_seed(seed)
    if training.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if training.finetune == "full":
        return model.requires_grad_(True)
    return add_lora(model, lora)


def add_lora(model, lora: LoraConfig):
    config = PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)
