"""Eval sets: which problems an evaluation covers and how it samples them."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class EvalSetConfig:
    """Section `eval_sets.<name>`."""

    dataset: str  # a dataset under `datasets`
    split: str  # a split of it, or 'subset': each variant's own training problems
    n_problems: int  # the first n problems of the split
    n_samples: int  # samples per problem (avg@n, pass@n)
    temperature: float
    top_p: float
    top_k: int  # 0 = off
    max_new_tokens: int
    seed: int
    variants: str  # all | base: which variants are evaluated on it
    epistemic: str  # free | banned (NoWait) | forced (no end of thinking before one): what checking is worth


def eval_problems(problems: pd.DataFrame, split: str, n_problems: int, key: str) -> pd.DataFrame:
    """The first n_problems of a split; split 'subset' means a coverage subset (whose
    batch-filling repeats are dropped). `key` names the config key of the split, for the error."""
    if split == "subset":
        chosen = problems.drop_duplicates("problem_id")
    else:
        chosen = problems[problems["split"] == split]
        if chosen.empty:
            raise ValueError(
                f"{key} = {split!r}: no problems of that split in the dataset (its splits: "
                f"{sorted(problems['split'].unique())}); fix {key}"
            )
    return chosen.head(n_problems).reset_index(drop=True)
