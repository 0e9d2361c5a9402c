"""The summary table: one row per (model, method, richness, coverage, seed, ablation, eval set)."""

from __future__ import annotations

import re

import pandas as pd

EVAL_PATH = re.compile(
    r"results/(?P<model>[^/]+)/eval/(?P<method>base|[a-z]+)"
    r"(/(?P<richness>[a-z_]+)/(?P<ablation>[a-z]+))?(/c(?P<coverage>\d+|full)_s(?P<seed>\d+))?/(?P<eval_set>[^/]+)\.parquet$"
)
TRAIN_PATH = re.compile(
    r"results/(?P<model>[^/]+)/train/(?P<method>[a-z]+)/(?P<richness>[a-z_]+)/(?P<ablation>[a-z]+)"
    r"/c(?P<coverage>\d+|full)_s(?P<seed>\d+)/\w+\.parquet$"
)
TEACHER_PATH = re.compile(
    r"results/(?P<model>[^/]+)/teacher/(?P<richness>[a-z_]+)/c(?P<coverage>\d+|full)_s(?P<seed>\d+)\.parquet$"
)
AXES = ["model", "method", "richness", "ablation", "coverage", "seed", "eval_set"]


def train_size(problems: pd.DataFrame) -> int:
    """Distinct training problems: the coverage that `full` stands for."""
    return int(problems.loc[problems["split"] == "train", "problem_id"].nunique())


def parse_path(pattern: re.Pattern, path: str, full_coverage: int | None = None) -> dict:
    """Grid axes from an output path; coverage `full` (c full in the path) becomes `full_coverage`."""
    match = pattern.search(str(path))
    if not match:
        raise ValueError(f"{path} does not look like a workflow output ({pattern.pattern})")
    axes = match.groupdict()
    if axes.get("coverage") == "full":
        if full_coverage is None:
            raise ValueError(f"{path}: coverage 'full' needs the training set's size (full_coverage)")
        axes["coverage"] = full_coverage
    for key in ("coverage", "seed"):
        axes[key] = int(axes[key]) if axes.get(key) is not None else None
    if "ablation" in axes:
        axes["ablation"] = axes["ablation"] or "standard"
    return axes


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


def summarize(tables: dict, full_coverage: int | None = None) -> pd.DataFrame:
    """tables: eval path -> per-sample table; full_coverage: what coverage `full` stands for."""
    rows = [{**parse_path(EVAL_PATH, path, full_coverage), **sample_metrics(t)} for path, t in tables.items()]
    df = pd.DataFrame(rows)
    df["coverage"] = df["coverage"].astype("Int64")
    df["seed"] = df["seed"].astype("Int64")
    return df.sort_values(AXES, na_position="first").reset_index(drop=True)
