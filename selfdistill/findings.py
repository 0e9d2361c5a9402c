"""The paper's four claims tested on this run's outputs, per model; the headline table (each world's
arms against their base model, beside what was predicted and what the paper reported); the findings
page. Every row names its model: nothing here averages over models."""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd

from selfdistill.checking import render_checking
from selfdistill.draws import render_draws
from selfdistill.grid import METHODS
from selfdistill.stats import arm, base_arm, holm, independent_difference, paired_difference, select, verdict

# ---- the paper's own numbers (arXiv 2603.24472; ../shared/DOMAIN.md), beside the claims they belong to -------

PAPER_MODEL = "DeepSeek-R1-Distill-Qwen-7B"
# Table 1: teacher responses per context on 100 DAPO problems: (score, length in tokens, epistemic words).
TABLE1 = {
    "none": (0.30, 13054, 182.5),
    "solution": (0.98, 1873, 8.8),
    "solution_nothink": (0.78, 12036, 159.8),
    "regen": (0.95, 2808, 24.1),
}
# Table 2: avg@16 (%) of the base model and of SFT on correct unguided (none) / solution-guided traces.
TABLE2 = {
    "base": {"AIME24": 54.79, "AIME25": 37.92, "AMC23": 89.06, "MATH500": 92.19},
    "none": {"AIME24": 51.04, "AIME25": 40.00, "AMC23": 87.66, "MATH500": 90.93},
    "solution": {"AIME24": 20.21, "AIME25": 12.71, "AMC23": 57.03, "MATH500": 65.52},
}


def _table2(richness: str) -> str:
    sft = TABLE2[richness]
    return "Table 2 (avg@16, %): " + ", ".join(f"{k} {TABLE2['base'][k]:.1f} → {v:.1f}" for k, v in sft.items())


# Per arm (method, richness) and quantity: what the paper reported for it, as text.
PAPER_ARMS = {
    ("onpolicy", "solution"): {
        "ood": "SDPO: AIME24 ≈ −40% relative, AMC23 ≈ −15% (figures, approx.)",
        "epistemic": "'wait' ≈ −61 per AIME24 response (approx.)",
    },
    ("grpo", "none"): {"ood": "GRPO: rises slightly (approx.)", "epistemic": "kept or increased"},
    ("sft", "solution"): {"ood": _table2("solution")},
    ("sft", "none"): {"ood": _table2("none")},
}


def paper_claim(claim: str, rich: str, metric_or_method: str) -> str:
    """The paper's number for one claims row, or why there is none."""
    if claim == "a":
        column = {"epistemic_count": 2, "mean_tokens": 1}[metric_or_method]
        unit = {2: "epistemic words", 1: "tokens"}[column]
        if rich not in TABLE1:
            return f"not reported for context {rich}"
        return f"none {TABLE1['none'][column]:,} → {rich} {TABLE1[rich][column]:,} {unit} (Table 1)"
    if claim == "b":
        return PAPER_ARMS.get((metric_or_method, rich), {}).get("ood", f"not reported for {metric_or_method}/{rich}")
    if claim == "c":
        return "coverage 1–128: in-domain gains fast; from 512: in domain rises while OOD falls (figures, approx.)"
    return "not tested in the paper"


def _claim(model, claim, question, comparison, result, direction, margin, n_seeds, paper):
    return {
        "model": model,
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
    for metric, margin in (("epistemic_count", 0.1), ("mean_tokens", 1.0)):
        result = paired_difference(arm(t_rich, metric), arm(t_none, metric))
        rows.append(
            _claim(
                model,
                "a",
                "Richer context gives fewer epistemic words and shorter responses",
                f"teacher {metric}: {rich} - none context",
                result,
                -1,
                margin,
                seeds(t_rich),
                paper_claim("a", rich, metric),
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
                    model,
                    "b",
                    "Self-distillation with rich context lowers OOD accuracy",
                    f"{eval_set} accuracy: {method} ({rich}, coverage {cover_hi}) - base",
                    result,
                    -1,
                    0.02,
                    seeds(cell),
                    paper_claim("b", rich, method),
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
                model,
                "c",
                "Low task coverage gives fast in-domain gains",
                f"in-domain reward gain (last - first third of steps): coverage {low} - coverage {high}",
                result,
                +1,
                0.02,
                int(runs["seed"].nunique()),
                paper_claim("c", rich, "onpolicy"),
            )
        )
    # (d) preserving uncertainty removes the OOD drop.
    cell = {"model": model, "method": "onpolicy", "richness": rich, "coverage": cover_hi, "eval_set": eval_set}
    preserve, standard = select(problems, **cell, ablation="preserve"), select(problems, **cell, ablation="standard")
    if len(preserve) and len(standard):
        rows.append(
            _claim(
                model,
                "d",
                "Preserving uncertainty removes the OOD drop",
                f"{eval_set} accuracy: onpolicy {rich} preserve - standard (coverage {cover_hi})",
                paired_difference(arm(preserve), arm(standard)),
                +1,
                0.02,
                seeds(preserve),
                paper_claim("d", rich, "onpolicy"),
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


def model_label(model: str, worlds: dict | None) -> str:
    world = (worlds or {}).get(model)
    return f"{model} ({world})" if world else model


def _markdown(table: pd.DataFrame) -> list[str]:
    lines = ["| " + " | ".join(table.columns) + " |", "|---" * len(table.columns) + "|"]
    return lines + ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]


# ---- the headline: per world and arm, what was predicted and what happened ----------------------------------

HEADLINE_QUANTITIES = {
    "ood": "OOD accuracy",
    "epistemic": "epistemic words / OOD response",
    "ood_on": "OOD accuracy, checking forced on",
    "recovery": "re-enable recovery",
    "in_domain": "in-domain accuracy",
}
_ARROW = {-1: "↓", 0: "=", 1: "↑"}
METHOD_NAMES = {"onpolicy": "on-policy", "grpo": "GRPO", "sft": "SFT"}
HEADLINE_LEGEND = (
    "Each arm minus its own model's base model on the same problems. A cell reads: the sign predicted from the "
    "config before any result (↓ lower, ↑ higher, = no effect: within ±0.05 accuracy, ±0.2 words), the effect "
    "[95% CI over seeds, then problems], and ✓ as predicted, ✗ not as predicted, ? inconclusive (Holm over the "
    "table). guess_check − null: the same arm's OOD effect in the world where checking is worth accuracy minus "
    "the world where it is not. The paper rows are its own reported numbers for that arm."
)


def headline_scope(effects: pd.DataFrame, gates: dict[str, dict] | None = None) -> str:
    """What the headline's intervals rest on: training seeds, coverage, pretrained models per world."""
    mine = effects[(effects["stratum"] == "all") & ~effects["model"].str.contains(" - ")]
    seeds = ", ".join(str(n) for n in sorted(mine["n_seeds"].astype(int).unique()))
    coverages = ", ".join(str(int(c)) for c in sorted(mine["coverage"].unique()))
    text = f"Training seeds per arm: {seeds}; coverage {coverages}."
    draws = pd.Series([g["world"] for g in (gates or {}).values()]).value_counts()
    if len(draws):
        counts = ", ".join(f"{world} {n}" for world, n in draws.items())
        text += f" Pretrained models per world: {counts}."
        if draws.min() < 3:
            text += " The intervals carry training seeds and problems, not the pretraining draw: another draw of the"
            text += " same world can give another verdict."
    return text


def arm_label(method: str, richness: str, ablation: str, coverage=None) -> str:
    name = METHOD_NAMES.get(method, method)
    label = name if method == "grpo" else f"{name}, {richness} teacher"
    label += "" if ablation == "standard" else f", {ablation}"
    return label + ("" if coverage is None or pd.isna(coverage) else f", coverage {int(coverage)}")


def _mark(verdict_text: str) -> str:
    if verdict_text.startswith("as predicted"):
        return "✓"
    if verdict_text.startswith(("not as predicted", "opposite")):
        return "✗"
    return "?"


def _cell(r) -> str:
    interval = f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]" if not np.isnan(r.ci_low) else "[n/a]"
    return f"{_ARROW[int(r.predicted)]} {r.effect:+.3f} {interval} {_mark(r.verdict)}"


def headline(effects: pd.DataFrame) -> pd.DataFrame:
    """One row per world (model) and arm, a column per quantity; then the between-world rows (OOD
    only), then the paper's reported numbers for the arms of this grid it reported on. effects: the
    organism table (`stratum` "all" rows are the headline; strata are details)."""
    effects = effects[effects["stratum"] == "all"]
    several = effects["coverage"].nunique() > 1
    rows = []
    for (model, world, method, richness, ablation, coverage), g in effects.groupby(
        ["model", "world", "method", "richness", "ablation", "coverage"], sort=False
    ):
        cells = {q: _cell(r) for r in g.itertuples() for q in [r.quantity] if q in HEADLINE_QUANTITIES}
        label = arm_label(method, richness, ablation, coverage if several else None)
        rows.append({"world (model)": f"{world} ({model})", "arm": label, **cells})
    for a in effects.drop_duplicates(["method", "richness"]).itertuples():
        paper = PAPER_ARMS.get((a.method, a.richness))
        if paper:
            rows.append({"world (model)": f"paper ({PAPER_MODEL})", "arm": arm_label(a.method, a.richness, "standard")})
            rows[-1].update(paper)
    table = pd.DataFrame(rows).reindex(columns=["world (model)", "arm", *HEADLINE_QUANTITIES]).fillna("")
    return table.rename(columns=HEADLINE_QUANTITIES)


def headline_rst(table: pd.DataFrame, title: str, legend: str, note: str = "") -> str:
    """The headline as reStructuredText (the HTML report's front page includes it): the legend,
    the table, then the note."""
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(
        [list(table.columns), *table.astype(str).to_numpy().tolist()]
    )
    body = "".join(f"   {line}\n" for line in buffer.getvalue().splitlines())
    return f"{legend}\n\n.. csv-table:: {title}\n   :header-rows: 1\n\n{body}\n{note}\n"


# ---- the page ----------------------------------------------------------------------------------------------

# claim -> (title, figure, what the grid needs to test it)
SECTIONS = {
    "a": (
        "(a) Richer context → fewer epistemic words, shorter responses",
        None,  # the teacher traces have no figure
        "teacher traces with a context and with none",
    ),
    "b": (
        "(b) Self-distillation with rich context lowers OOD accuracy",
        "figures/accuracy_by_richness.png",
        "a self-distillation method trained with a context",
    ),
    "c": (
        "(c) Low coverage gives fast in-domain gains",
        "figures/training_curves.png",
        "on-policy training at two or more coverages",
    ),
    "d": (
        "(d) Preserving uncertainty removes the OOD drop",
        "figures/factorial_ood_vs_epistemic.png",
        "on-policy training with the `preserve` ablation",
    ),
}
CLAIMS_NOTE = [
    "Per model: effects are means over problems (seeds averaged first) of the first arm minus the second; 95% CIs",
    "by bootstrap over problems; p from two-sided permutation tests, Holm-corrected over the rows of that model.",
    "*supported* = CI excludes 0 in the claimed direction and Holm p < 0.05 (the same rule for the opposite",
    "direction); *inconclusive* whenever the units (problems, or runs for (c)) are too few for p < 0.05.",
    f"The last column is what the paper reported ({PAPER_MODEL}) for the same comparison.",
]


def claims_table(rows: pd.DataFrame, worlds: dict | None) -> pd.DataFrame:
    """Claims rows as shown: each names its model (and world) and sits beside the paper's number."""
    return pd.DataFrame(
        {
            "model": [model_label(m, worlds) for m in rows["model"]],
            "comparison": rows["comparison"],
            "effect": [_fmt(x) for x in rows["effect"]],
            "95% CI": [f"[{_fmt(lo)}, {_fmt(hi)}]" for lo, hi in zip(rows["ci_low"], rows["ci_high"], strict=True)],
            "p (Holm)": [_fmt(x) for x in rows["p_holm"]],
            "problems": rows["n_problems"],
            "seeds": rows["n_seeds"],
            "verdict": [f"**{v}**" for v in rows["verdict"]],
            f"paper ({PAPER_MODEL})": rows["paper"].replace("", "—"),
        }
    )


def _signed(term: pd.Series) -> str:
    low, high = (f"{term[k]:+.3f}" if not np.isnan(term[k]) else "n/a" for k in ("ci_low", "ci_high"))
    return f"{term['coefficient']:+.3f} [{low}, {high}]"


def _mechanism(mechanism: pd.DataFrame, worlds: dict | None) -> list[str]:
    lines = ["## Does OOD accuracy track hedging across runs? (descriptive, per model)", ""]
    if mechanism.empty:
        return lines + ["No checkpoints of trained runs in this grid.", ""]
    lines += [
        "Per model, a line through its trained runs' points (each checkpoint and final model, all on the same OOD",
        "problems): the change in OOD accuracy from its base model against the change in epistemic words per",
        "response. The slope is OOD accuracy per epistemic word; the intercept is the OOD change at unchanged",
        "hedging (below 0: accuracy lost that hedging does not account for). 95% CIs: cluster bootstrap over runs.",
        "Where checking is worth accuracy (guess_check), runs that hedge less should score lower (slope > 0); where",
        "it is worth nothing (null), the slope should be near 0. Observational: forcing checks on is the causal test.",
        "",
    ]
    rows = []
    for model, fit in mechanism.groupby("model", sort=False):
        terms = fit.set_index("term")
        slope, intercept = terms.loc["slope"], terms.loc["intercept"]
        rows.append(
            {
                "model": model_label(model, worlds),
                "runs": int(slope["n_runs"]),
                "points": int(slope["n_points"]),
                "epistemic change covered": f"{slope['d_epistemic_min']:+.2f} to {slope['d_epistemic_max']:+.2f}",
                "OOD accuracy per epistemic word [95% CI]": _signed(slope),
                "OOD change at unchanged hedging [95% CI]": _signed(intercept),
            }
        )
    return lines + _markdown(pd.DataFrame(rows)) + [""]


def render(
    claims: pd.DataFrame,
    mechanism: pd.DataFrame,
    header: str,
    effects: pd.DataFrame | None = None,
    details: str = "",
    worlds: dict | None = None,
    gates: dict[str, dict] | None = None,
    draws: pd.DataFrame | None = None,
    draw_tests: pd.DataFrame | None = None,
    checking: pd.DataFrame | None = None,
) -> str:
    """The findings page: the headline table (per world and arm, predicted vs measured, beside the
    paper's numbers) and its figure first, then the organism across pretrained draws (draws: the
    per-draw table, draw_tests: its primary tests; one line when each world has one draw); then the
    paper's claims per model, checking's rate and worth per model and arm, the organism's details, the
    mechanism fit per model; the claims this grid cannot test as one line at the end."""
    lines = [header, ""]
    if effects is not None and len(effects):
        lines += ["## Headline: each arm against its base model, per world", "", HEADLINE_LEGEND, ""]
        lines += _markdown(headline(effects)) + ["", headline_scope(effects, gates), ""]
        lines += ["![Per world: OOD accuracy and hedging of each arm](figures/organism.png)", ""]
        lines += render_draws(pd.DataFrame() if draws is None else draws, draw_tests)
    tested = [key for key in SECTIONS if len(claims) and (claims["claim"] == key).any()]
    if tested:
        lines += ["## The paper's claims, per model", ""] + CLAIMS_NOTE + [""]
    for key in tested:
        title, figure, _ = SECTIONS[key]
        lines += [f"### {title}", ""] + _markdown(claims_table(claims[claims["claim"] == key], worlds))
        lines += ["", f"![{title}]({figure})", ""] if figure else [""]
    lines += render_checking(pd.DataFrame() if checking is None else checking, arm_label)
    if details:
        lines += [details.rstrip(), ""]
    lines += _mechanism(mechanism, worlds)
    untested = [f"{SECTIONS[k][0]} (needs {SECTIONS[k][2]})" for k in SECTIONS if k not in tested]
    if untested:
        lines += ["**Not tested by this grid:** " + "; ".join(untested) + ".", ""]
    return "\n".join(lines) + "\n"


def mechanism_points(curves: pd.DataFrame, eval_set: str) -> pd.DataFrame:
    """One point per trained run and step on eval_set (its checkpoints and its final weights, all
    scored on the same problems): the change in accuracy and in epistemic words per response from
    the base model (the run's step 0)."""
    run_keys = ["model", "method", "richness", "ablation", "coverage", "seed"]
    here = curves[curves["eval_set"] == eval_set]
    base = here.loc[here["step"] == 0, [*run_keys, "accuracy", "epistemic_count"]]
    points = here[here["step"] > 0].merge(base, on=run_keys, suffixes=("", "_base"))
    points["d_accuracy"] = points["accuracy"] - points["accuracy_base"]
    points["d_epistemic"] = points["epistemic_count"] - points["epistemic_count_base"]
    points["run"] = points[run_keys].astype(str).agg("/".join, axis=1)
    return points[run_keys + ["run", "step", "d_accuracy", "d_epistemic"]].dropna().reset_index(drop=True)
