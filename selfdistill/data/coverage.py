"""Task-coverage subsets: nested for a fixed seed, repeated to fill a batch as in the paper."""

from __future__ import annotations

import math
import random

import pandas as pd


def nested_order(problem_ids, seed: int) -> list[str]:
    """One permutation per seed; the subset of size c is its first c entries, so subsets nest."""
    order = sorted(problem_ids)
    random.Random(seed).shuffle(order)
    return order


def coverage_subset(problems: pd.DataFrame, coverage: int | str, seed: int, batch_size: int) -> pd.DataFrame:
    """The first `coverage` training problems in the seed's order (`full`: all of them), each repeated
    so that a subset smaller than the batch fills it (1 problem x 64, 8 x 8 for a batch of 64)."""
    train = problems[problems["split"] == "train"]
    coverage = len(train) if coverage == "full" else int(coverage)
    if coverage > len(train):
        raise ValueError(
            f"coverage {coverage} exceeds the {len(train)} training problems: lower it in `coverage` "
            "or enlarge the training split"
        )
    chosen = nested_order(train["problem_id"], seed)[:coverage]
    subset = train.set_index("problem_id").loc[chosen].reset_index()
    repeats = max(1, math.ceil(batch_size / coverage))
    filled = pd.concat([subset.assign(repeat=r) for r in range(repeats)], ignore_index=True)
    return filled.iloc[: max(coverage, batch_size)].reset_index(drop=True)
