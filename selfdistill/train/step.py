"""One optimizer step over accumulated micro-batches: what every training method shares."""

from __future__ import annotations

import math

import torch

from selfdistill import distributed


def accumulate_and_step(
    params, optimizer, micro_batches: list, micro_loss, n_tokens: int, max_grad_norm: float, step: int
) -> tuple[float, float, float]:
    """Gradient accumulation, clipping and one optimizer step; returns (loss sum, extra sum, grad norm).

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
        return loss_sum, extra_sum, 0.0
    grad_norm = distributed.full(torch.nn.utils.clip_grad_norm_(params, max_grad_norm)).item()
    require_finite(step, loss=loss_sum, grad_norm=grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)  # the gradients' memory is free while the next rollouts are sampled
    return loss_sum, extra_sum, grad_norm


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
