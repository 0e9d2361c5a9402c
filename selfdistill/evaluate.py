"""Which problems an eval set covers."""

from __future__ import annotations

import pandas as pd


def eval_problems(problems: pd.DataFrame, eval_set: dict, name: str) -> pd.DataFrame:
    """The first n_problems of the eval set's split; split 'subset' means a coverage subset
    (whose batch-filling repeats are dropped)."""
    if eval_set["split"] == "subset":
        chosen = problems.drop_duplicates("problem_id")
    else:
        chosen = problems[problems["split"] == eval_set["split"]]
        if chosen.empty:
            raise ValueError(
                f"eval set {name!r}: split {eval_set['split']!r} has no problems in dataset {eval_set['dataset']!r} "
                f"(its splits: {sorted(problems['split'].unique())}); fix eval_sets.{name}.split"
            )
    return chosen.head(eval_set["n_problems"]).reset_index(drop=True)
