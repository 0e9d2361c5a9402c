"""Section `grading`: how answers are graded (last boxed answer after </think>, math-verify in a
killable process pool)."""

from __future__ import annotations

from dataclasses import dataclass

from selfdistill.settings.core import Positive, PositiveInt


@dataclass(frozen=True, kw_only=True)
class GradingConfig:
    """`grading`: the math-verify worker pool."""

    workers: PositiveInt
    """math-verify worker processes"""
    timeout_s: Positive
    """per answer; a worker that overruns is killed and the answer graded wrong (`timeout`)"""
    max_answer_chars: PositiveInt = 1000
    """a longer extracted answer is graded wrong with status too_long (math-verify reads ~2,000+ characters
    by their first number)"""
