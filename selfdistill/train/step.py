"""What every training step shares, whatever the method."""

from __future__ import annotations

import math


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
