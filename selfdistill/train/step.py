"""One optimizer step over accumulated micro-batches: what every training method shares."""

from __future__ import annotations

import math

import torch

from selfdistill import distributed


def accumulate_and_step(
    params, optimizer, micro_batches: list, micro_loss, n_tokens: int, max_grad_norm: float, step: int
) -> tuple[float, float, float]:
    """Gradient accumulation, clipping and one optimizer step; returns (loss sum, extra sum, grad norm).

    micro_loss(index, micro) -> (loss summed over the micro-batch's valid tokens, a float to sum
    alongside, e.g. the divergence). The loss is normalized by the valid tokens of the whole step,
    so micro-batches with more tokens weigh more, as they should. Across training ranks each rank
    takes its share of the micro-batches; their sums are all-reduced.
    """
    optimizer.zero_grad(set_to_none=True)
    world = distributed.world_size()
    loss_sum, extra_sum = 0.0, 0.0
    for index, (micro, weight) in enumerate(distributed.my_share(micro_batches)):
        loss, extra = micro_loss(index, micro)
        # x world: sharded gradients are averaged over ranks, so this makes them the step's sum.
        (loss * (weight * world / max(1, n_tokens))).backward()
        loss_sum += loss.item() * weight
        extra_sum += extra * weight
    loss_sum, extra_sum = distributed.all_sum(loss_sum), distributed.all_sum(extra_sum)
    if not micro_batches:  # nothing to learn from this step (e.g. every rollout masked)
        return loss_sum, extra_sum, 0.0
    grad_norm = distributed.full(torch.nn.utils.clip_grad_norm_(params, max_grad_norm)).item()
    require_finite(step, loss=loss_sum, grad_norm=grad_norm)
    optimizer.step()
    return loss_sum, extra_sum, grad_norm


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
