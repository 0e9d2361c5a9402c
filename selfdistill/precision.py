"""Mixed precision for full fine-tuning: float32 master weights (and so float32 gradients and AdamW
state), the forward and backward passes in the model's own dtype (`models.<name>.dtype`: bf16 for
the paper's models).

Why: an AdamW step moves a weight by about the learning rate, and bf16's spacing near a weight of
0.02 is 1.2e-4, so steps of 1e-5 (SDPO) or 1e-6 (GRPO) applied to bf16 weights mostly round to no
change at all. The paper's verl runs keep float32 masters under FSDP's mixed precision; so does
this. One process computes under `torch.autocast`; sharded ranks through FSDP2's
MixedPrecisionPolicy (`selfdistill.distributed.shard`). What leaves training (the rollout engine's
weights, checkpoints, the trained model, a frozen teacher's copy) is in the compute dtype, cast one
tensor at a time. LoRA needs none of this: PEFT keeps the adapter in float32 on a bf16 base.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext

import torch

_ATTR = "compute_dtype"  # set on a model whose trainable weights are float32 masters


def use_float32_masters(model):
    """Every weight of `model` (loaded in its compute dtype) becomes a float32 master; the compute
    dtype is remembered on the model. A float32 (or float64) model is left as it is."""
    dtype = next(model.parameters()).dtype
    if is_low_precision(dtype):
        model.float()
        setattr(model, _ATTR, dtype)
    return model


def is_low_precision(dtype: torch.dtype) -> bool:
    """bf16 / fp16: too coarse for optimizer updates of ~1e-5 (bf16's spacing at 0.02 is 1.2e-4)."""
    return dtype.is_floating_point and torch.finfo(dtype).bits < 32


def compute_dtype(model) -> torch.dtype:
    """The dtype the model computes in: the one it was loaded in."""
    return getattr(model, _ATTR, None) or next(model.parameters()).dtype


def has_masters(model) -> bool:
    return getattr(model, _ATTR, None) is not None


def autocast(model):
    """The context for a forward pass of `model`: autocast to its compute dtype when it holds float32
    masters and is not sharded (a sharded model, even on one rank, computes in it through FSDP's
    MixedPrecisionPolicy)."""
    from torch.distributed.fsdp import FSDPModule

    if not has_masters(model) or isinstance(model, FSDPModule):
        return nullcontext()
    return torch.autocast(next(model.parameters()).device.type, dtype=compute_dtype(model))


def for_export(model, tensor: torch.Tensor) -> torch.Tensor:
    """A weight as it leaves training (engine, checkpoint): in the model's compute dtype."""
    return tensor.to(compute_dtype(model)) if has_masters(model) else tensor


def frozen_copy(model):
    """A no-grad copy of the model's current weights in its compute dtype, built one tensor at a time
    (never a second float32 model in memory; tied weights stay tied)."""
    dtype = compute_dtype(model)
    memo = {id(p): torch.nn.Parameter(p.detach().to(dtype, copy=True), requires_grad=False) for p in model.parameters()}
    initial = copy.deepcopy(model, memo)
    if hasattr(initial, _ATTR):
        delattr(initial, _ATTR)
    return initial.eval()
