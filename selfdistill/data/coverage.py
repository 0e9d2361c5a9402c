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
    return fill_batch(train.set_index("problem_id").loc[chosen].reset_index(), batch_size)


def fixed_subset(problems: pd.DataFrame, coverage: int | str, batch_size: int, name: str) -> pd.DataFrame:
    """A coverage subset given as a dataset of its own (`coverage_files`, e.g. the paper's shipped
    subsets): all of its training problems, which must number `coverage`; the same for every seed."""
    train = problems[problems["split"] == "train"]
    if coverage != "full" and len(train) != int(coverage):
        raise ValueError(
            f"dataset {name!r} holds {len(train)} distinct training problems but is the subset of coverage "
            f"{coverage} (`coverage_files`): map it to coverage {len(train)}, or fix the file"
        )
    return fill_batch(train.reset_index(drop=True), batch_size)


def fill_batch(subset: pd.DataFrame, batch_size: int) -> pd.DataFrame:
    """The subset's problems, each repeated so that a subset smaller than the batch fills it."""
    repeats = max(1, math.ceil(batch_size / len(subset)))
    filled = pd.concat([subset.assign(repeat=r) for r in range(repeats)], ignore_index=True)
    return filled.iloc[: max(len(subset), batch_size)].reset_index(drop=True)
