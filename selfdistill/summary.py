"""The summary tables: one row per evaluated model (`metrics`), and one per checkpoint of the rollout
methods' runs on their curve eval set (`curves`), both from the per-sample evaluation tables."""

from __future__ import annotations

import pandas as pd

from selfdistill import grid

AXES = ["model", "method", "richness", "ablation", "coverage", "seed", "eval_set"]
RUN_AXES = ["model", "method", "richness", "ablation", "coverage", "seed"]


def train_size(problems: pd.DataFrame) -> int:
    """Distinct training problems: the coverage that `full` stands for."""
    return int(problems.loc[problems["split"] == "train", "problem_id"].nunique())


def sample_metrics(samples: pd.DataFrame) -> dict:
    """avg@n, pass@n and response statistics from a per-sample evaluation table."""
    per_problem = samples.groupby("problem_id")["correct"]
    return {
        "accuracy": samples["correct"].mean(),
        "pass_at_n": per_problem.any().mean(),
        "mean_tokens": samples["n_tokens"].mean(),
        "epistemic_count": samples["epistemic_count"].mean(),
        "epistemic_words": samples["epistemic_words"].mean(),
        "epistemic_density": samples["epistemic_density"].mean(),
        "truncation_rate": samples["truncated"].mean(),
        "no_boxed_rate": (samples["grade_status"] == "no_boxed").mean(),
        "n_problems": samples["problem_id"].nunique(),
        "n_samples": int(per_problem.size().max()),
    }


def _rows(tables: dict, full_coverage: int | None) -> pd.DataFrame:
    return pd.DataFrame(
        [{**grid.parse_path("eval", path, full_coverage), **sample_metrics(t)} for path, t in tables.items()]
    )


def summarize(tables: dict, full_coverage: int | None = None) -> pd.DataFrame:
    """tables: eval path -> per-sample table (final evaluations); full_coverage: what coverage
    `full` stands for."""
    df = _rows(tables, full_coverage).drop(columns="step")
    df["coverage"] = df["coverage"].astype("Int64")
    df["seed"] = df["seed"].astype("Int64")
    return df.sort_values(AXES, na_position="first").reset_index(drop=True)


def curves(tables: dict, checkpoint_tables: dict, methods: dict, full_coverage: int | None = None) -> pd.DataFrame:
    """Per rollout run, its curve eval set's metrics against training step: step 0 is the base
    model, the checkpoints their step, the trained model the method's last step.

    tables: final evaluations (eval path -> table); checkpoint_tables: the checkpoints' evaluations;
    methods: per rollout method, its curve `eval_set` and `steps`.
    """
    final = _rows(tables, full_coverage)
    runs = final[final["method"].isin(list(methods))]
    runs = runs[runs.apply(lambda r: r["eval_set"] == methods[r["method"]]["eval_set"], axis=1)]
    parts = [runs.assign(step=runs["method"].map(lambda m: methods[m]["steps"]))]
    if checkpoint_tables:
        parts.append(_rows(checkpoint_tables, full_coverage))
    base = final[(final["method"] == "base") & final["coverage"].isna()]
    for _, run in runs[RUN_AXES + ["eval_set"]].drop_duplicates().iterrows():
        start = base[(base["model"] == run["model"]) & (base["eval_set"] == run["eval_set"])]
        parts.append(start.assign(**{k: run[k] for k in RUN_AXES}, step=0))
    df = pd.concat(parts, ignore_index=True)
    for column in ("coverage", "seed", "step"):
        df[column] = df[column].astype("Int64")
    return df.sort_values(AXES + ["step"]).reset_index(drop=True)
