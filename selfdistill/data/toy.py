"""The toy world: chained single-digit additions, worked solutions, and pretraining traces.

In-domain problems have few terms; OOD problems have more (a longer chain than any seen in
pretraining). Unguided traces sometimes slip on a step, say so with the paper's words and
redo it; traces written with a solution in context copy it without hedging. That is the
behaviour the paper attributes to real reasoning models, built in so the distillation
experiment has something to act on; nothing about the distillation outcome is built in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pandas as pd

from selfdistill.data import TOY_SPLITS

# Phrases the unguided traces use when a step went wrong, and when re-checking a right step.
_CORRECTIONS = (
    "Wait, that seems wrong. {step}",
    "Hmm, let me check. {step}",
    "Wait, actually {step}",
)
_VERIFICATIONS = (
    "Hmm, let me check: {step} Yes.",
    "Maybe I should check: {step} Yes.",
)


def problem_text(terms) -> str:
    return "Compute " + "+".join(map(str, terms)) + "."


def steps(terms):
    """(left, right, result) for each partial sum."""
    out, total = [], terms[0]
    for t in terms[1:]:
        out.append((total, t, total + t))
        total += t
    return out


def _step(a, b, r) -> str:
    return f"{a}+{b}={r}."


def solution_text(terms) -> str:
    body = " ".join(_step(*s) for s in steps(terms))
    return f"<think>{body}</think> The answer is \\boxed{{{sum(terms)}}}."


def unguided_trace(terms, rng: random.Random, p_error: float, p_verify: float) -> str:
    """A trace of the model thinking alone: slips, hedges and self-corrections."""
    parts = []
    for a, b, r in steps(terms):
        if rng.random() < p_error:
            wrong = r + rng.choice((-2, -1, 1, 2, 10, -10))
            wrong = wrong if wrong >= 0 and wrong != r else r + 1
            parts.append(_step(a, b, wrong))
            parts.append(rng.choice(_CORRECTIONS).format(step=_step(a, b, r)))
        else:
            parts.append(_step(a, b, r))
            if rng.random() < p_verify:
                parts.append(rng.choice(_VERIFICATIONS).format(step=_step(a, b, r)))
    return "<think>" + " ".join(parts) + f"</think> The answer is \\boxed{{{sum(terms)}}}."


def sample_terms(rng: random.Random, n_terms_range, max_operand: int):
    n = rng.randint(*n_terms_range)
    return [rng.randint(2, max_operand) for _ in range(n)]


def _distinct_problems(rng, n, n_terms_range, max_operand, exclude):
    out, seen = [], set(exclude)
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 100 * n + 1000:
            raise ValueError(
                f"cannot draw {n} distinct toy problems with terms {n_terms_range} and operands 2..{max_operand}: "
                "lower the split size or widen terms/max_operand in the toy dataset config"
            )
        terms = sample_terms(rng, n_terms_range, max_operand)
        text = problem_text(terms)
        if text not in seen:
            seen.add(text)
            out.append(terms)
    return out


@dataclass(frozen=True)
class ToyDataConfig:
    """Section `datasets.<name>.toy`: the toy problems of each split."""

    seed: int
    n_train: int  # distinct problems of the train split (coverage subsets are drawn from it)
    n_test: int  # held-out in-domain problems
    n_ood: int  # out-of-domain problems
    train_terms: tuple[int, ...]  # [low, high] number of terms, train and test
    ood_terms: tuple[int, ...]  # [low, high] number of terms, ood
    max_operand: int


def generate_problems(spec: ToyDataConfig) -> pd.DataFrame:
    """The toy dataset in the normalized problem schema, splits train / test / ood."""
    rng = random.Random(spec.seed)
    rows, used = [], set()
    sizes = (spec.n_train, spec.n_test, spec.n_ood)
    for split, n, terms_range in zip(
        TOY_SPLITS, sizes, (spec.train_terms, spec.train_terms, spec.ood_terms), strict=True
    ):
        for i, terms in enumerate(_distinct_problems(rng, n, terms_range, spec.max_operand, used)):
            text = problem_text(terms)
            used.add(text)
            rows.append(
                {
                    "problem_id": f"toy-{split}-{i:05d}",
                    "problem": text,
                    "solution": solution_text(terms),
                    "answer": str(sum(terms)),
                    "source": "toy",
                    "split": split,
                }
            )
    return pd.DataFrame(rows)


def parse_terms(problem: str):
    return [int(t) for t in problem.removeprefix("Compute ").rstrip(".").split("+")]
