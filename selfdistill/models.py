"""Loading models and tokenizers: hub ids and local directories alike, optional LoRA adapter."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def load_tokenizer(model_path: str):
    tok = AutoTokenizer.from_pretrained(model_path)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token  # masks are built by position, so pad == eos is safe
    return tok


def is_full_model(trained_path) -> bool:
    """A training output holds a whole model (finetune: full) rather than a LoRA adapter."""
    return trained_path is not None and not (Path(trained_path) / "adapter_config.json").exists()


def load_model(model_path: str, adapter_path: str | None = None, dtype: str = "float32", merge: bool = False):
    """The model at `model_path`, with the trained weights at `adapter_path` (an adapter, or a whole model)."""
    if is_full_model(adapter_path):
        model_path, adapter_path = adapter_path, None
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype))
    if torch.cuda.is_available():
        model = model.to("cuda")
    if adapter_path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_path)
        if merge:
            model = model.merge_and_unload()
    return model
