"""How often a model verbalizes checking and what a check is worth, for any model (issue 22, item 6):
the toy organism's decomposition for real checkpoints. For every evaluation set X that is also
evaluated with checking banned (X_checks_off: the epistemic words never sampled) and forced
(X_checks_on: no end of thinking before one), each trained arm against its base model:

- the effect of training on X sampled freely, forced on and banned, and the recovery (forced-on
  effect minus free effect), with the seed-then-problem CIs of the organism's effects;
- what checking is worth, causally: accuracy forced on minus banned, for the base and the arm;
- the change on X split as in selfdistill.draws (one stratum): (a) the rate of checking times what a
  check was worth to the base (observational), (b) accuracy when it checks, (c) accuracy when it does
  not, with a CI for (a) resampling problems.

A response "checks" when it has one of the paper's epistemic words at the start of a word ("Wait",
"checking", not "await"): the text form of what the forcing and the ban act on (the ids whose text
starts with one of the words), so banned samples check at rate ~0 and forced ones at ~1 (both rates
are in the table: a processor that does not act shows there). With 8k-40k-token responses nearly
every base sample may check; then the rate term is ~0 by construction and the change sits in (b)/(c).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from selfdistill.draws import decompose
from selfdistill.epistemic import EPISTEMIC_WORDS
from selfdistill.organism import seed_effect
from selfdistill.stats import N_RESAMPLES, arm, paired_difference

ON, OFF = "_checks_on", "_checks_off"
_WORD_START = re.compile(r"\b(?:" + "|".join(EPISTEMIC_WORDS) + ")", re.IGNORECASE)
ARM_AXES = ["model", "method", "richness", "ablation", "coverage"]
EFFECTS = {"free": "", "on": ON, "off": OFF}  # effect name -> eval set suffix


def verbalizes_checking(responses: pd.Series) -> np.ndarray:
    """Per response: whether it has an epistemic word at the start of a word."""
    return responses.map(lambda text: _WORD_START.search(text) is not None).to_numpy(bool)


def checking_sets(eval_sets) -> list[str]:
    """The evaluation sets also evaluated with checking forced on and banned."""
    names = set(eval_sets)
    return sorted(x for x in names if x + ON in names and x + OFF in names)


def checking_eval_sets(eval_sets) -> set[str]:
    """Every evaluation set the checking table reads: each checking set with its forced and banned ones."""
    return {x + suffix for x in checking_sets(eval_sets) for suffix in EFFECTS.values()}


def _per_seed_problem(samples: pd.DataFrame) -> pd.DataFrame:
    means = samples.groupby(["seed", "problem_id"], as_index=False)["correct"].mean()
    return means.rename(columns={"correct": "value"})


def _problem_sums(samples: pd.DataFrame, problems: pd.Index) -> np.ndarray:
    """Per problem: samples, checking samples, correct checking samples, correct others (columns)."""
    c, y = samples["checked"].to_numpy(bool), samples["correct"].to_numpy(bool)
    parts = pd.DataFrame({"problem_id": samples["problem_id"], "n": 1, "c": c, "yc": y & c, "yn": y & ~c})
    return parts.groupby("problem_id")[["n", "c", "yc", "yn"]].sum().reindex(problems).to_numpy(float)


def rate_term_ci(base: pd.DataFrame, trained: pd.DataFrame, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of the rate term, resampling problems (each with all its samples, of base and arm)."""
    problems = pd.Index(sorted(set(base["problem_id"]) & set(trained["problem_id"])))
    s0, s1 = _problem_sums(base, problems), _problem_sums(trained, problems)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(problems), np.full(len(problems), 1 / len(problems)), size=N_RESAMPLES)
    (n0, c0, yc0, yn0), (n1, c1) = (weights @ s0).T, (weights @ s1[:, :2]).T
    with np.errstate(invalid="ignore", divide="ignore"):
        worth = yc0 / c0 - yn0 / (n0 - c0)  # what a check was worth to the base in each resample
        terms = np.where(c1 / n1 == c0 / n0, 0.0, (c1 / n1 - c0 / n0) * worth)
    if not np.isfinite(terms).all():  # a resample where the base always or never checks: its worth is undefined
        return float("nan"), float("nan")
    tail = (1 - level) / 2
    return float(np.quantile(terms, tail)), float(np.quantile(terms, 1 - tail))


def _effect_columns(name: str, effect: dict) -> dict:
    return {name: effect["effect"], f"{name}_ci_low": effect["ci_low"], f"{name}_ci_high": effect["ci_high"]}


def _arm_row(samples: pd.DataFrame, axes: dict, eval_set: str) -> dict | None:
    """One trained arm on one checking set; None when any of the six evaluations is missing."""
    pick = lambda suffix, **where: samples[  # noqa: E731
        (samples["eval_set"] == eval_set + suffix) & np.logical_and.reduce([samples[k] == v for k, v in where.items()])
    ]
    trained = {name: pick(suffix, **axes) for name, suffix in EFFECTS.items()}
    base = {name: pick(suffix, model=axes["model"], method="base") for name, suffix in EFFECTS.items()}
    if any(t.empty for t in (*trained.values(), *base.values())):
        return None
    row = {**axes, "eval_set": eval_set, "n_seeds": trained["free"]["seed"].nunique()}
    row["n_problems"] = trained["free"]["problem_id"].nunique()
    evals = {"base": base, "arm": trained}
    accuracy = {who: {name: arm(frame, "correct") for name, frame in e.items()} for who, e in evals.items()}
    for name in EFFECTS:
        row.update(_effect_columns(name, seed_effect(_per_seed_problem(trained[name]), accuracy["base"][name])))
    both = _per_seed_problem(trained["on"]).merge(
        _per_seed_problem(trained["free"]), on=["seed", "problem_id"], suffixes=("_on", "_free")
    )
    gain = both.assign(value=both["value_on"] - both["value_free"])[["seed", "problem_id", "value"]]
    row.update(_effect_columns("recovery", seed_effect(gain, accuracy["base"]["on"] - accuracy["base"]["free"])))
    for who, e in evals.items():
        row.update(_effect_columns(f"value_{who}", paired_difference(accuracy[who]["on"], accuracy[who]["off"])))
        row[f"rate_on_{who}"], row[f"rate_off_{who}"] = e["on"]["checked"].mean(), e["off"]["checked"].mean()
    b, a = base["free"], trained["free"]
    parts = decompose(b["checked"], b["correct"], a["checked"], a["correct"])
    row.update(parts)
    row["rate_term_ci_low"], row["rate_term_ci_high"] = rate_term_ci(b, a)
    row["rate_share"] = parts["rate_term"] / parts["total"] if parts["total"] else float("nan")
    return row


def checking_table(samples: pd.DataFrame) -> pd.DataFrame:
    """samples: per-sample rows (problem_id, checked, correct) with the grid axes (model, method,
    richness, ablation, coverage, seed, eval_set) -> one row per trained arm and checking set."""
    sets = checking_sets(samples["eval_set"].unique()) if len(samples) else []
    rows = []
    for eval_set in sets:
        trained = samples[(samples["eval_set"] == eval_set) & (samples["method"] != "base")]
        for axes in trained[ARM_AXES].drop_duplicates().to_dict("records"):
            row = _arm_row(samples, axes, eval_set)
            if row is not None:
                rows.append(row)
    return pd.DataFrame(rows)


def _f(x, digits: int = 3) -> str:
    return "–" if pd.isna(x) else f"{x:+.{digits}f}"


def _ci(r, name: str) -> str:
    return f"{_f(r[name])} [{_f(r[name + '_ci_low'])}, {_f(r[name + '_ci_high'])}]"


def render_checking(table: pd.DataFrame, arm_label) -> list[str]:
    """The findings page's section: one row per model, arm and evaluation set."""
    if table.empty:
        return []
    lines = [
        "## Checking: how often each model checks and what a check is worth",
        "",
        "Each trained arm against its base model on an evaluation set also sampled with the epistemic words",
        "banned (checks off) and with one forced before the end of thinking (checks on); 95% CIs resample",
        "seeds then problems. A response checks when it has an epistemic word at the start of a word. The",
        "free change splits into (a) the rate of checking × what a check was worth to the base (observational;",
        "CI resampling problems), (b) accuracy when checking, (c) accuracy when not; (a)+(b)+(c) = the free",
        "change. What checking is worth causally: accuracy forced on − banned. Descriptive: no test is run here.",
        "",
    ]
    header = ["model", "arm", "eval set", "free", "forced on", "banned", "recovery", "checks: base → arm"]
    header += ["worth (on − off): base → arm", "(a) rate", "(b) when checking", "(c) when not", "rate share"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in table.to_dict("records"):
        cells = [r["model"], arm_label(r["method"], r["richness"], r["ablation"], r["coverage"]), r["eval_set"]]
        cells += [_ci(r, "free"), _ci(r, "on"), _ci(r, "off"), _ci(r, "recovery")]
        forcing = f"forced {r['rate_on_arm']:.2f}, banned {r['rate_off_arm']:.2f}"
        cells.append(f"{r['rate_base']:.2f} → {r['rate_arm']:.2f} ({forcing})")
        cells.append(f"{_f(r['value_base'])} → {_f(r['value_arm'])}")
        cells += [_ci(r, "rate_term"), _f(r["check_accuracy_term"]), _f(r["nocheck_accuracy_term"])]
        cells.append("–" if pd.isna(r["rate_share"]) else f"{r['rate_share']:.2f}")
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return lines + [""]
