"""One optimizer step over accumulated micro-batches: what every training method shares."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from selfdistill import distributed

log = logging.getLogger(__name__)
# A step that changes fewer of the sampled trainable weights than this is logged as vanishing. A
# healthy step changes every weight with a gradient (> 90% on the tiny model; a LoRA adapter's first
# step only its B half, as A gets no gradient while B = 0); bf16 weights at lr 1e-6 / 1e-5: 2-15%.
VANISHING = 0.25


def make_optimizer(params: list, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW as the paper's verl actor uses it (torch's, betas 0.9 / 0.999, decoupled weight decay on
    every trainable weight). Its state takes the weights' dtype: float32 (`require_float32_trainable`)."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


@dataclass(frozen=True)
class StepStats:
    loss: float  # summed over the step's valid tokens
    extra: float  # summed alongside (e.g. the divergence)
    grad_norm: float  # before clipping
    changed: float  # fraction of the sampled trainable weights the optimizer step changed (NaN: no step)
    update_ratio: float  # RMS of the update / RMS of the weights, over the same sample


class UpdateProbe:
    """Reads a fixed sample of every trainable tensor (64 evenly spaced entries of each, by their
    index in the whole tensor, so the same entries whatever the number of ranks sharding it) before
    and after an optimizer step: which fraction of the weights the step really changed, and its
    size relative to the weights. A few hundred small reads per step whatever the model's size; it
    shows an update that rounds to nothing (bf16 weights, a zero learning rate)."""

    PER_TENSOR = 64

    def __init__(self, params):
        self.reads = [self._local_read(p) for p in params]

    def _local_read(self, p):
        """(this rank's tensor, the flat indices into it of the sampled entries it holds)."""
        numel = p.numel()  # of the whole tensor, sharded or not
        wanted = torch.linspace(0, numel - 1, min(numel, self.PER_TENSOR)).long()
        if not hasattr(p, "to_local"):
            return p, wanted
        from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

        local = p.to_local()
        shape, offset = compute_local_shape_and_global_offset(p.shape, p.device_mesh, p.placements)
        row = math.prod(p.shape[1:])  # FSDP shards dim 0: this rank holds whole rows [offset, offset + rows)
        start, stop = offset[0] * row, (offset[0] + shape[0]) * row
        held = wanted[(wanted >= start) & (wanted < stop)]
        return local, held - start

    def read(self) -> torch.Tensor:
        parts = [t.detach().reshape(-1)[i.to(t.device)].double().cpu() for t, i in self.reads]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)

    @staticmethod
    def compare(before: torch.Tensor, after: torch.Tensor) -> tuple[float, float]:
        """(fraction changed, update RMS / weight RMS), summed over ranks."""
        diff = after - before
        changed, count, diff_sq, weight_sq = (
            distributed.all_sum(float(v))
            for v in ((diff != 0).sum(), diff.numel(), diff.square().sum(), before.square().sum())
        )
        return changed / max(1.0, count), math.sqrt(diff_sq / weight_sq) if weight_sq else math.nan


def accumulate_and_step(
    params, optimizer, micro_batches: list, micro_loss, n_tokens: int, max_grad_norm: float, step: int
) -> StepStats:
    """Gradient accumulation, clipping and one optimizer step.

    micro_loss(micro, scale) back-propagates the micro-batch's loss (summed over its valid
    tokens) times `scale` and returns (that loss sum, a float to sum alongside, e.g. the divergence):
    it runs its own backward so it can do so chunk by chunk (`backward_in_chunks`). The scale
    normalizes by the valid tokens of the whole step, so micro-batches with more tokens weigh
    more, as they should. Across training ranks each rank takes its share of the micro-batches;
    their sums are all-reduced.
    """
    optimizer.zero_grad(set_to_none=True)
    # x world: sharded gradients are averaged over ranks, so this makes them the step's sum.
    scale = distributed.world_size() / max(1, n_tokens)
    loss_sum, extra_sum = 0.0, 0.0
    for micro, weight in distributed.my_share(micro_batches):
        loss, extra = micro_loss(micro, weight * scale)
        loss_sum += loss * weight
        extra_sum += extra * weight
    loss_sum, extra_sum = distributed.all_sum(loss_sum), distributed.all_sum(extra_sum)
    if not micro_batches:  # nothing to learn from this step (e.g. every rollout masked)
        return StepStats(loss_sum, extra_sum, 0.0, math.nan, math.nan)
    grad_norm = distributed.full(torch.nn.utils.clip_grad_norm_(params, max_grad_norm)).item()
    require_finite(step, loss=loss_sum, grad_norm=grad_norm)
    probe = UpdateProbe(params)
    before = probe.read()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)  # the gradients' memory is free while the next rollouts are sampled
    changed, ratio = probe.compare(before, probe.read())
    lr = optimizer.param_groups[0]["lr"]
    if changed < VANISHING and lr > 0 and grad_norm > 0:
        log.warning(
            "step %d: the optimizer step changed %.2f%% of the sampled trainable weights (update / weight RMS %.2e, "
            "lr %.2e): the update is vanishing. Likely causes: trainable weights in bf16/fp16 (an update of ~lr rounds "
            "to nothing), or a learning rate too small for the weights' precision",
            step,
            100 * changed,
            ratio,
            lr,
        )
    return StepStats(loss_sum, extra_sum, grad_norm, changed, ratio)


def backward_in_chunks(hidden, chunk_loss, chunk: int, scale: float) -> tuple[float, float]:
    """A loss over completion positions, computed and back-propagated `chunk` positions at a time.

    chunk_loss(hidden_chunk, positions) -> (loss summed over the chunk's valid tokens, extra sum
    tensor) applies the LM head and the per-token loss to one chunk: only that chunk's logits
    (and the teacher's) exist at once, so the loss's memory is bounded by the chunk whatever the
    completion length, and nothing is computed twice. Each chunk's loss x `scale` is
    back-propagated into the (detached) hidden states and the head at once; the hidden states'
    gradient then goes through the model in one backward. Returns (loss sum, extra sum).
    """
    trains = hidden.requires_grad
    leaf = hidden.detach().requires_grad_(trains)
    loss_sum = extra_sum = 0.0
    for start in range(0, hidden.shape[1], chunk):
        loss, extra = chunk_loss(leaf[:, start : start + chunk], slice(start, start + chunk))
        if trains:
            (loss * scale).backward()
        loss_sum, extra_sum = loss_sum + loss.detach(), extra_sum + extra.detach()
    if trains and leaf.grad is not None:
        hidden.backward(leaf.grad)
    return float(loss_sum), float(extra_sum)


def require_finite(step: int, **values: float) -> None:
    """Stop training at the first non-finite loss or gradient norm, before the optimizer writes it
    into the weights: a run that silently goes on with NaN parameters reports wrong numbers."""
    bad = {name: value for name, value in values.items() if not math.isfinite(value)}
    if bad:
        raise FloatingPointError(
            f"step {step}: {', '.join(f'{k} = {v}' for k, v in bad.items())}; training stops before the weights are "
            "updated. Likely causes: a teacher target with zero probability where the student has some (reverse KL, "
            "onpolicy.alpha = 1), a learning rate that diverges, or float16 overflow (use bfloat16 or float32)"
        )
