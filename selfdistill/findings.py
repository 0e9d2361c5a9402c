"""The paper's four claims, tested on this run's outputs, and the findings page."""

from __future__ import annotations

import numpy as np
import pandas as pd

from selfdistill.grid import METHODS
from selfdistill.stats import arm, base_arm, holm, independent_difference, paired_difference, select

PAPER_MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"
# Paper, Table 1 (that model, none vs solution context) and the approximate on-policy drop.
PAPER = {
    "a_epistemic": "182.5 -> 8.8 epistemic words (Table 1)",
    "a_length": "13,054 -> 1,873 tokens (Table 1)",
    "b": "AIME24 about -40% relative with SDPO, solution context (approx.)",
}


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


def _claim(claim, question, comparison, result, direction, margin, n_seeds, paper=""):
    return {
        "claim": claim,
        "question": question,
        "comparison": comparison,
        **result,
        "direction": direction,
        "margin": margin,
        "n_seeds": n_seeds,
        "paper": paper,
    }


def reward_gain(logs: pd.DataFrame) -> pd.Series:
    """Per run: mean rollout reward over the last third of steps minus the first third."""

    def gain(g):
        third = max(1, len(g) // 3)
        g = g.sort_values("step")
        return g["reward"].iloc[-third:].mean() - g["reward"].iloc[:third].mean()

    return logs.groupby("seed").apply(gain, include_groups=False)


def evaluate_claims(problems, teacher, logs, model, rich, eval_set="ood", in_domain="train"):
    """Claims (a)-(d) for one model; `rich` is the richest context level in the grid.

    problems: per-problem eval table; teacher: per-problem teacher-trace table;
    logs: per-step training logs of the rollout methods.
    """
    rows = []
    cover_hi = problems["coverage"].max()
    seeds = lambda f: int(f["seed"].nunique())  # noqa: E731
    # (a) richer context -> fewer epistemic words and shorter responses (teacher traces).
    t_rich, t_none = select(teacher, model=model, richness=rich), select(teacher, model=model, richness="none")
    for metric, key, margin in (("epistemic_count", "a_epistemic", 0.1), ("mean_tokens", "a_length", 1.0)):
        result = paired_difference(arm(t_rich, metric), arm(t_none, metric))
        rows.append(
            _claim(
                "a",
                "Richer context gives fewer epistemic words and shorter responses",
                f"teacher {metric}: {rich} - none context",
                result,
                -1,
                margin,
                seeds(t_rich),
                PAPER[key] if model == PAPER_MODEL else "",
            )
        )
    # (b) self-distillation with rich context lowers OOD accuracy.
    for method in (m for m, spec in METHODS.items() if spec.teacher):
        cell = select(
            problems,
            model=model,
            method=method,
            richness=rich,
            ablation="standard",
            coverage=cover_hi,
            eval_set=eval_set,
        )
        if len(cell):
            result = paired_difference(arm(cell), base_arm(problems, model, eval_set, cover_hi))
            rows.append(
                _claim(
                    "b",
                    "Self-distillation with rich context lowers OOD accuracy",
                    f"{eval_set} accuracy: {method} ({rich}, coverage {cover_hi}) - base",
                    result,
                    -1,
                    0.02,
                    seeds(cell),
                    PAPER["b"] if model == PAPER_MODEL and method == "onpolicy" else "",
                )
            )
    # (c) low coverage gives fast in-domain gains (rollout reward over training).
    runs = select(logs, model=model, method="onpolicy", richness=rich, ablation="standard")
    if runs["coverage"].nunique() >= 2:
        low, high = runs["coverage"].min(), runs["coverage"].max()
        g_low, g_high = reward_gain(runs[runs["coverage"] == low]), reward_gain(runs[runs["coverage"] == high])
        result = independent_difference(g_low, g_high)  # runs (seeds) are the units, not pairings of them
        result["n_problems"] = int(low)
        rows.append(
            _claim(
                "c",
                "Low task coverage gives fast in-domain gains",
                f"in-domain reward gain (last - first third of steps): coverage {low} - coverage {high}",
                result,
                +1,
                0.02,
                int(runs["seed"].nunique()),
            )
        )
    # (d) preserving uncertainty removes the OOD drop.
    cell = {"model": model, "method": "onpolicy", "richness": rich, "coverage": cover_hi, "eval_set": eval_set}
    preserve, standard = select(problems, **cell, ablation="preserve"), select(problems, **cell, ablation="standard")
    if len(preserve) and len(standard):
        rows.append(
            _claim(
                "d",
                "Preserving uncertainty removes the OOD drop",
                f"{eval_set} accuracy: onpolicy {rich} preserve - standard (coverage {cover_hi})",
                paired_difference(arm(preserve), arm(standard)),
                +1,
                0.02,
                seeds(preserve),
            )
        )
    table = pd.DataFrame(rows)
    table["p_holm"] = holm(table["p_value"])
    table["verdict"] = [
        verdict(r.effect, r.ci_low, r.ci_high, r.p_holm, r.direction, r.margin, r.min_p) for r in table.itertuples()
    ]
    return table


def _fmt(x, digits=3):
    return (
        "n/a"
        if x is None or (isinstance(x, float) and np.isnan(x))
        else f"{x:.{digits}g}"
        if abs(x) >= 1000
        else f"{x:.{digits}f}"
    )


SECTIONS = {
    "a": ("(a) Richer context → fewer epistemic words, shorter responses", "figures/epistemic_by_richness.png"),
    "b": ("(b) Self-distillation with rich context lowers OOD accuracy", "figures/accuracy_by_richness.png"),
    "c": ("(c) Low coverage gives fast in-domain gains", "figures/training_curves.png"),
    "d": ("(d) Preserving uncertainty removes the OOD drop", "figures/factorial_ood_vs_epistemic.png"),
}


def render(claims: pd.DataFrame, mechanism: pd.DataFrame, header: str) -> str:
    lines = [header, ""]
    lines += [
        "Effects are means over problems (seeds averaged first) of the first arm minus the second; 95% CIs by",
        "bootstrap over problems; p-values from two-sided permutation tests, Holm-corrected over the tests on",
        "this page. Verdicts: *supported* = CI excludes 0 in the claimed direction and Holm p < 0.05 (the same",
        "rule for the opposite direction); *inconclusive* whenever the units (problems, or runs for (c)) are too",
        "few for any test to reach p < 0.05. Claim (c) compares runs: its CI resamples each coverage's runs.",
        "",
    ]
    for key, (title, figure) in SECTIONS.items():
        lines += [f"## {title}", ""]
        rows = claims[claims["claim"] == key]
        if rows.empty:
            lines += ["Not tested: the grid has no cells for this claim.", ""]
            continue
        lines += [
            "| comparison | effect | 95% CI | p | p (Holm) | problems | seeds | verdict | paper |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows.itertuples():
            lines.append(
                f"| {r.comparison} | {_fmt(r.effect)} | [{_fmt(r.ci_low)}, {_fmt(r.ci_high)}] | {_fmt(r.p_value)} | "
                f"{_fmt(r.p_holm)} | {r.n_problems} | {r.n_seeds} | **{r.verdict}** | {r.paper or '—'} |"
            )
        lines += ["", f"![{title}]({figure})", ""]
    lines += ["## Mechanism: does OOD accuracy follow epistemic verbalization? (descriptive)", ""]
    if mechanism.empty:
        lines += ["Not enough runs for the regression.", ""]
    for model, fit in mechanism.groupby("model", sort=True) if len(mechanism) else ():
        lines += [
            f"**{model}.** OLS of OOD accuracy on epistemic words per response, with response length (per 100",
            "tokens) and context richness as covariates, over final evaluations and training checkpoints on the",
            "same problems; 95% CIs by cluster bootstrap over runs. Observational: it shows whether accuracy",
            "tracks verbalization across runs, not that verbalization causes it.",
            "",
            "| term | coefficient | 95% CI |",
            "|---|---|---|",
        ]
        for r in fit.itertuples():
            lines.append(f"| {r.term} | {_fmt(r.coefficient, 4)} | [{_fmt(r.ci_low, 4)}, {_fmt(r.ci_high, 4)}] |")
        d = fit.set_index("term").loc["epistemic_count"]
        held = "with richness and length held fixed"
        if np.isnan(d["ci_low"]):
            statement = "too few runs to separate epistemic words from richness and length."
        elif d["ci_low"] > 0:
            statement = f"yes: {held}, runs that verbalize more uncertainty score higher OOD."
        elif d["ci_high"] < 0:
            statement = f"the opposite: {held}, runs that verbalize more uncertainty score lower OOD."
        else:
            statement = f"not detectably: {held}, the CI of the epistemic-count coefficient includes 0."
        lines += ["", f"**Answer ({int(d['n_runs'])} runs, {int(d['n_points'])} points):** {statement}", ""]
    return "\n".join(lines) + "\n"


def mechanism_points(curves: pd.DataFrame, eval_set: str) -> pd.DataFrame:
    """One point per trained run and step on eval_set (its checkpoints and its final weights, all
    scored on the same problems); the base model (step 0) is not a run's point."""
    run_keys = ["model", "method", "richness", "ablation", "coverage", "seed"]
    points = curves[(curves["eval_set"] == eval_set) & (curves["step"] > 0)]
    points = points[run_keys + ["step", "accuracy", "mean_tokens", "epistemic_count"]].copy()
    points["run"] = points[run_keys].astype(str).agg("/".join, axis=1)
    return points.dropna(subset=["accuracy", "mean_tokens", "epistemic_count"]).reset_index(drop=True)
