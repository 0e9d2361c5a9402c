"""Statistics across seeds and problems: cell estimates with bootstrap CIs, paired comparisons
with permutation tests and Holm correction, verdicts, and the mechanism fit.

Unit of resampling: the problem (and the seed when there are at least three), because problems
are the experiment's independent draws; samples of one problem are not independent.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

METRICS = ["accuracy", "mean_tokens", "epistemic_count", "epistemic_density"]
CELL_KEYS = ["model", "method", "richness", "ablation", "coverage", "eval_set"]
N_RESAMPLES = 2000


def per_problem(samples: pd.DataFrame) -> pd.DataFrame:
    """Per-sample table -> one row per problem: accuracy (avg@n) and response statistics."""
    return (
        samples.groupby("problem_id", sort=True)
        .agg(
            accuracy=("correct", "mean"),
            mean_tokens=("n_tokens", "mean"),
            epistemic_count=("epistemic_count", "mean"),
            epistemic_density=("epistemic_density", "mean"),
        )
        .reset_index()
    )


def bootstrap_ci(values: np.ndarray, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean over problems (NaN with fewer than two problems)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float("nan"), float("nan")
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ci = stats.bootstrap(
            (values,), np.mean, n_resamples=N_RESAMPLES, confidence_level=level, method="percentile", random_state=seed
        ).confidence_interval
    return float(ci.low), float(ci.high)


def hierarchical_ci(matrix: np.ndarray, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Bootstrap CI of the grand mean of a seeds x problems matrix, resampling seeds, then problems."""
    rng = np.random.default_rng(seed)
    n_seeds, n_problems = matrix.shape
    means = np.empty(N_RESAMPLES)
    for b in range(N_RESAMPLES):
        rows = matrix[rng.integers(0, n_seeds, n_seeds)]
        means[b] = rows[:, rng.integers(0, n_problems, n_problems)].mean()
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def cell_estimates(problems: pd.DataFrame) -> pd.DataFrame:
    """Per grid cell (all axes but the seed): mean, sd over seeds, and a 95% CI per metric.

    The CI resamples problems, and seeds too when a cell has at least three.
    """
    rows = []
    for key, g in problems.groupby(CELL_KEYS, dropna=False, sort=True):
        row = dict(zip(CELL_KEYS, key, strict=True))
        seeds = g["seed"].nunique(dropna=False)
        row.update(n_seeds=seeds, n_problems=g["problem_id"].nunique())
        for metric in METRICS:
            matrix = (
                g.pivot_table(index="seed", columns="problem_id", values=metric, dropna=False).to_numpy()
                if seeds > 1
                else g[[metric]].to_numpy().T
            )
            matrix = matrix[:, ~np.isnan(matrix).any(0)]  # problems every seed evaluated
            row[metric] = float(np.nanmean(matrix))
            row[f"{metric}_sd_seeds"] = float(np.std(matrix.mean(1), ddof=1)) if seeds > 1 else float("nan")
            low, high = hierarchical_ci(matrix) if seeds >= 3 else bootstrap_ci(matrix.mean(0))
            row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = low, high
        rows.append(row)
    return pd.DataFrame(rows)


def paired_difference(a: pd.Series, b: pd.Series, seed: int = 0) -> dict:
    """Arms indexed by problem_id (values already averaged over seeds and samples).

    Effect = mean over shared problems of a - b, a bootstrap CI, and a two-sided sign-flip
    permutation test of zero mean difference.
    """
    shared = a.index.intersection(b.index)
    d = (a.loc[shared] - b.loc[shared]).to_numpy(dtype=float, copy=True)
    # Differences of equal fractions computed in floating point (0.45 - 0.4 vs 0.85 - 0.8) are
    # ~1e-17, all of one sign: a "significant" effect of nothing. They are zero.
    d[np.abs(d) < 1e-12] = 0.0
    out = {"n_problems": len(d), "effect": float(d.mean()) if len(d) else float("nan")}
    out["ci_low"], out["ci_high"] = bootstrap_ci(d, seed)
    out["min_p"] = min(1.0, 2.0 ** (1 - len(d))) if len(d) else float("nan")  # one sign pattern of 2^n, two-sided
    if len(d) < 2 or np.all(d == 0):
        out["p_value"] = 1.0 if len(d) >= 2 else float("nan")
    else:
        out["p_value"] = float(
            stats.permutation_test(
                (d,), np.mean, permutation_type="samples", n_resamples=9999, random_state=seed
            ).pvalue
        )
    return out


def independent_difference(x, y, seed: int = 0, level: float = 0.95) -> dict:
    """mean(x) - mean(y) for two independent groups (e.g. runs' seeds under two settings): a
    bootstrap CI resampling each group on its own, an exact two-sided permutation p (for small
    groups), and the smallest p the groups' sizes can give: 2 vs 2 units can never reach 0.05."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    out = {"effect": float(x.mean() - y.mean()) if len(x) and len(y) else float("nan")}
    out["min_p"] = min(1.0, 2 / math.comb(len(x) + len(y), len(x))) if len(x) and len(y) else float("nan")
    if len(x) < 2 or len(y) < 2:
        return {**out, "ci_low": float("nan"), "ci_high": float("nan"), "p_value": float("nan")}
    difference = lambda a, b, axis=-1: np.mean(a, axis=axis) - np.mean(b, axis=axis)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ci = stats.bootstrap(
            (x, y), difference, n_resamples=N_RESAMPLES, confidence_level=level, method="percentile", random_state=seed
        ).confidence_interval
    p = stats.permutation_test((x, y), difference, permutation_type="independent", random_state=seed).pvalue
    return {**out, "ci_low": float(ci.low), "ci_high": float(ci.high), "p_value": float(p)}


def verdict(effect, low, high, p_adj, direction: int, margin: float, min_p: float = 0.0) -> str:
    """supported: the CI excludes 0 in the claimed direction and the Holm-adjusted p < 0.05;
    opposite direction: the same on the other side; no effect: the CI lies inside ±margin;
    inconclusive otherwise, and always when the design cannot reach p < 0.05 (too few units)."""
    if any(np.isnan(v) for v in (effect, low, high)):
        return "inconclusive (too few problems for an interval)"
    if min_p >= 0.05:
        return f"inconclusive (too few units: the smallest attainable p is {min_p:.3g})"
    significant = p_adj < 0.05
    if significant and direction * low > 0 and direction * high > 0:
        return "supported"
    if significant and direction * high < 0 and direction * low < 0:
        return "not supported (effect in the opposite direction)"
    if -margin <= low and high <= margin:
        return f"not supported (no effect: CI within ±{margin:g})"
    return "inconclusive at this sample size"


def holm(p_values) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (NaNs stay NaN and do not count as tests)."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid])]
    m, running = len(order), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def select(problems: pd.DataFrame, **axes) -> pd.DataFrame:
    mask = np.ones(len(problems), dtype=bool)
    for key, value in axes.items():
        mask &= (problems[key] == value).to_numpy()
    return problems[mask]


def arm(frame: pd.DataFrame, metric: str = "accuracy") -> pd.Series:
    """Per-problem metric of one arm, averaged over seeds."""
    return frame.groupby("problem_id")[metric].mean()


def base_arm(problems: pd.DataFrame, model: str, eval_set: str, coverage) -> pd.Series:
    base = select(problems, model=model, method="base", eval_set=eval_set)
    if base["coverage"].notna().any():  # a subset eval set: the base model on the same subsets
        base = base[base["coverage"] == coverage]
    return arm(base)


def standard_comparisons(problems: pd.DataFrame) -> pd.DataFrame:
    """Every trained cell vs the base model, context vs none, and each ablation vs standard, on
    the same problems; p-values Holm-corrected over all comparisons in the table."""
    rows = []
    cells = problems[problems["method"] != "base"].drop_duplicates(CELL_KEYS)[CELL_KEYS]
    for cell in cells.to_dict("records"):
        treated = arm(select(problems, **cell))
        pairs = [("vs base", "base", base_arm(problems, cell["model"], cell["eval_set"], cell["coverage"]))]
        if cell["richness"] != "none":
            pairs.append(("context vs none", "richness none", arm(select(problems, **{**cell, "richness": "none"}))))
        if cell["ablation"] != "standard":
            pairs.append(
                ("ablation vs standard", "ablation standard", arm(select(problems, **{**cell, "ablation": "standard"})))
            )
        for comparison, against, reference in pairs:
            if len(reference):
                rows.append(
                    {"comparison": comparison, **cell, "against": against, **paired_difference(treated, reference)}
                )
    table = pd.DataFrame(rows)
    if len(table):
        table["p_holm"] = holm(table["p_value"])
    return table


def mechanism_fit(points: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Descriptive, one model (world) at a time: OLS over its trained runs' points (each run's
    checkpoints and final model, all on the same problems) of the change in accuracy from the base
    model on the change in epistemic words per response (columns d_accuracy, d_epistemic, run).

    slope: accuracy per epistemic word per response; intercept: the change in accuracy that the
    change in hedging does not account for (0 where accuracy moves only with hedging, negative where
    runs lose accuracy at unchanged hedging). Both stay in accuracy units, unlike a fit on levels
    with length beside the count (collinear with it in the toy worlds: a check is both). Points of
    one run are correlated, so CIs come from a cluster bootstrap over runs. Observational: it says
    whether accuracy tracks hedging across runs, not that one causes the other."""
    if "model" in points and points["model"].nunique() > 1:
        raise ValueError("mechanism_fit pools points of several models; fit each model on its own")
    names = ["intercept", "slope"]

    def design(df):
        return np.column_stack([np.ones(len(df)), df["d_epistemic"].to_numpy(float)])

    def fit(df):
        coef, *_ = np.linalg.lstsq(design(df), df["d_accuracy"].to_numpy(float), rcond=None)
        return coef

    runs = points["run"].unique()
    identifiable = len(runs) >= 3 and np.linalg.matrix_rank(design(points)) == len(names)
    by_run = {r: g for r, g in points.groupby("run")}
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(N_RESAMPLES // 2 if identifiable else 0):
        sample = pd.concat([by_run[r] for r in rng.choice(runs, len(runs))])
        if np.linalg.matrix_rank(design(sample)) == len(names):
            boots.append(fit(sample))
    low, high = np.quantile(boots, [0.025, 0.975], axis=0) if boots else np.full((2, len(names)), np.nan)
    return pd.DataFrame(
        {
            "term": names,
            "coefficient": fit(points),
            "ci_low": low,
            "ci_high": high,
            "n_points": len(points),
            "n_runs": len(runs),
            "d_epistemic_min": points["d_epistemic"].min(),
            "d_epistemic_max": points["d_epistemic"].max(),
        }
    )
