"""Eval sets: which problems an evaluation covers and how it samples them."""

from __future__ import annotations

import pandas as pd


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
