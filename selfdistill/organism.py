"""The model organism's controls (selfdistill.data.toy's guess worlds): the gate before any
distillation, the re-enable test after it, per-stratum effects, the predictions written from the
config before any result exists, and the comparison between worlds that is the mechanism's evidence.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from selfdistill.data import toy
from selfdistill.grid import METHODS
from selfdistill.settings.organism import OrganismConfig
from selfdistill.stats import hierarchical_ci, holm, paired_difference, select, verdict

_GUESS = re.compile(r"Guess: (\d+)\.")


def guess_outcomes(samples: pd.DataFrame, answers: pd.Series) -> pd.DataFrame:
    """Per sample: whether its first guess was right (NaN without a guess), and whether it said Wait."""
    guesses = samples["response"].str.extract(_GUESS, expand=False)
    truth = samples["problem_id"].map(answers)
    return pd.DataFrame(
        {
            "guess_right": np.where(guesses.isna(), np.nan, (guesses == truth).astype(float)),
            "wait": samples["response"].str.contains("Wait").astype(float),
        }
    )


def _wait_after(samples: pd.DataFrame, answers: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Whether each sample said Wait, for samples whose guess was wrong, and right."""
    outcomes = guess_outcomes(samples, answers)
    return outcomes.loc[outcomes["guess_right"] == 0, "wait"], outcomes.loc[outcomes["guess_right"] == 1, "wait"]


def _accuracy(samples: pd.DataFrame) -> float:
    return float(samples["correct"].mean())


def gate(world: str, evals: dict[str, pd.DataFrame], answers: pd.Series, config: OrganismConfig) -> dict:
    """The gate's measurements on the base model and the failures (empty when it passes).

    evals: the samples of the gate's four eval sets, keyed ood_off, ood_on, in_domain_off, in_domain_on.
    guess_check must show checking worth >= min_ood_value OOD, <= max_in_domain_value in domain, and
    Wait after wrong guesses more than after right ones; null must show checking worth nothing OOD.
    """
    ood_value = _accuracy(evals["ood_on"]) - _accuracy(evals["ood_off"])
    in_domain_value = _accuracy(evals["in_domain_on"]) - _accuracy(evals["in_domain_off"])
    wrong, right = _wait_after(evals["ood_on"], answers)
    selectivity = (wrong.mean() if len(wrong) else np.nan) - (right.mean() if len(right) else np.nan)
    # In domain, for the record: guesses there are short, so this one cannot ride on length.
    wrong_in, right_in = _wait_after(evals["in_domain_on"], answers)
    result = {
        "world": world,
        "ood_off": _accuracy(evals["ood_off"]),
        "ood_on": _accuracy(evals["ood_on"]),
        "ood_value": ood_value,
        "in_domain_off": _accuracy(evals["in_domain_off"]),
        "in_domain_on": _accuracy(evals["in_domain_on"]),
        "in_domain_value": in_domain_value,
        "wait_after_wrong_guess": float(wrong.mean()) if len(wrong) else np.nan,
        "wait_after_right_guess": float(right.mean()) if len(right) else np.nan,
        "wait_selectivity": float(selectivity),
        "n_wrong_guesses": len(wrong),
        "wait_after_wrong_guess_in_domain": float(wrong_in.mean()) if len(wrong_in) else np.nan,
        "wait_after_right_guess_in_domain": float(right_in.mean()) if len(right_in) else np.nan,
        "n_wrong_guesses_in_domain": len(wrong_in),
    }
    failures = []
    if world == "guess_check":
        if not ood_value >= config.min_ood_value:
            failures.append(
                f"checking is worth {ood_value:+.3f} OOD accuracy (organism.min_ood_value = {config.min_ood_value})"
            )
        if not in_domain_value <= config.max_in_domain_value:
            failures.append(
                f"checking is worth {in_domain_value:+.3f} in domain (organism.max_in_domain_value = "
                f"{config.max_in_domain_value})"
            )
        if np.isnan(selectivity) and config.min_wait_selectivity > -1:
            failures.append(
                f"no wrong and right guesses to compare Wait after ({len(wrong)} wrong, {len(right)} right parsed "
                "'Guess: N.' in the forced-on OOD samples): the model does not follow its world's grammar"
            )
        elif selectivity < config.min_wait_selectivity:
            failures.append(
                f"Wait follows {result['wait_after_wrong_guess']:.2f} of wrong guesses and "
                f"{result['wait_after_right_guess']:.2f} of right ones (organism.min_wait_selectivity = "
                f"{config.min_wait_selectivity})"
            )
    elif not abs(ood_value) <= config.max_null_value:
        failures.append(
            f"checking is worth {ood_value:+.3f} OOD in the null world "
            f"(organism.max_null_value = {config.max_null_value})"
        )
    return {**result, "passed": not failures, "failures": failures}


# ---- effects with seed-level intervals --------------------------------------------------------


def seed_effect(treated: pd.DataFrame, reference: pd.Series, seed: int = 0) -> dict:
    """Effect of an arm against a reference on the same problems: treated has one row per (seed,
    problem_id) with column `value`; reference is per problem_id. The CI resamples seeds then
    problems (hierarchical bootstrap) with >= 3 seeds, problems of the seed mean otherwise; the p
    is the sign-flip test over problems of the seed-averaged difference; seed_sd is the spread of
    the per-seed effects."""
    matrix = treated.pivot_table(index="seed", columns="problem_id", values="value")
    shared = matrix.columns.intersection(reference.index)
    diff = matrix[shared].sub(reference.loc[shared], axis=1).dropna(axis=1).to_numpy(float)
    out = paired_difference(pd.Series(diff.mean(0)), pd.Series(np.zeros(diff.shape[1])), seed)
    per_seed = diff.mean(1)
    if len(per_seed) >= 3:
        out["ci_low"], out["ci_high"] = hierarchical_ci(diff, seed)
    out["n_seeds"] = len(per_seed)
    out["seed_sd"] = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else np.nan
    out["seed_effects"] = ", ".join(f"{e:+.3f}" for e in per_seed)
    return out


# ---- predictions, written from the config alone ------------------------------------------------

# What each quantity is, per trained arm against the base model (OOD unless said).
QUANTITIES = {
    "ood": "OOD accuracy",
    "ood_on": "OOD accuracy with checking forced on (re-enable)",
    "ood_off": "OOD accuracy with checking forced off (the guess alone)",
    "recovery": "re-enable recovery: (on - free) of the arm minus that of the base",
    "in_domain": "in-domain accuracy (held-out, same lengths as training)",
    "epistemic": "epistemic words per OOD response",
}
MARGIN = 0.05  # |accuracy effect| within which "no effect" is predicted (0.2 words for epistemic)


def predict(world: str, method: str, richness: str, ablation: str, quantity: str) -> int:
    """The sign the paper's hypothesis predicts for an arm in a world: -1, 0 or +1.

    The solution-conditioned teacher never checks, in both worlds, so distilling toward it lowers
    checking (epistemic words) wherever there is a context teacher; that costs accuracy only where
    checking is worth accuracy (guess_check, OOD), and forcing checking back on recovers it when the
    ability is suppressed rather than damaged. GRPO's reward keeps useful checks; a context-free
    teacher (richness none) is the model itself, so nothing moves; `preserve` keeps the hedges."""
    rich_teacher = richness != "none" and METHODS[method].teacher
    suppresses = rich_teacher and ablation != "preserve"
    if quantity == "epistemic":
        return -1 if suppresses else 0
    if world != "guess_check" or quantity in ("in_domain", "ood_on", "ood_off"):
        return 0
    return {"ood": -1, "recovery": +1}[quantity] if suppresses else 0


def _margin(quantity: str) -> float:
    return 0.2 if quantity == "epistemic" else MARGIN


def _sign(sign: int, quantity: str) -> str:
    return {-1: "lower", 0: f"no effect (within ±{_margin(quantity):g})", 1: "higher"}[sign]


def predictions(worlds: dict[str, str], arms: list[tuple[str, str, str]]) -> pd.DataFrame:
    """One row per world, arm and quantity: the predicted sign, from the config before any result."""
    rows = []
    for model, world in worlds.items():
        for method, richness, ablation in arms:
            for quantity in QUANTITIES:
                sign = predict(world, method, richness, ablation, quantity)
                rows.append(
                    {
                        "model": model,
                        "world": world,
                        "method": method,
                        "richness": richness,
                        "ablation": ablation,
                        "quantity": quantity,
                        "predicted": sign,
                        "prediction": _sign(sign, quantity),
                    }
                )
    return pd.DataFrame(rows)


def render_predictions(table: pd.DataFrame) -> str:
    """The predictions section: one table per world, arms as rows, quantities as columns."""
    lines = [
        "## Predictions (written from the config before any result)",
        "",
        "Under the paper's hypothesis, per world, each arm against the base model. Accuracy effects within",
        f"±{MARGIN:g} (epistemic words per response: ±{_margin('epistemic'):g}) count as no effect. The teacher",
        "never checks in either world, so a context teacher lowers checking in both; only in guess_check is",
        "checking worth accuracy, so only there should the drop in checking cost OOD accuracy, and forcing",
        "checking back on recover it.",
        "",
    ]
    for (model, world), g in table.groupby(["model", "world"], sort=False):
        lines += [f"**{model}** (world {world})", "", "| arm | " + " | ".join(QUANTITIES) + " |"]
        lines.append("|---" * (len(QUANTITIES) + 1) + "|")
        for arm, a in g.groupby(["method", "richness", "ablation"], sort=False):
            cells = a.set_index("quantity")["prediction"]
            lines.append(f"| {'/'.join(arm)} | " + " | ".join(cells[q] for q in QUANTITIES) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


# ---- results beside them ----------------------------------------------------------------------


def sum_lengths(dataset: pd.DataFrame) -> pd.Series:
    """problem_id -> "N terms" for the toy problems of a dataset table: the OOD strata."""
    toy_rows = dataset[dataset["source"] == "toy"]
    return pd.Series(
        [f"{len(toy.parse_terms(p))} terms" for p in toy_rows["problem"]], index=toy_rows["problem_id"].to_numpy()
    )


def _arm(problems, model, eval_set, metric="accuracy", **axes) -> pd.DataFrame:
    """One arm's metric per (seed, problem_id), as column `value`."""
    g = select(problems, model=model, eval_set=eval_set, **axes)
    return g.groupby(["seed", "problem_id"], as_index=False)[metric].mean().rename(columns={metric: "value"})


def _base(problems, model, eval_set, metric="accuracy") -> pd.Series:
    return select(problems, model=model, eval_set=eval_set, method="base").groupby("problem_id")[metric].mean()


def organism_effects(
    problems: pd.DataFrame,
    worlds: dict[str, str],
    sets: OrganismConfig,
    pairs: list[tuple[str, str]] = (),
    strata: pd.Series | None = None,
) -> pd.DataFrame:
    """Each trained arm of each world against its base model, per quantity, with seed-level CIs;
    plus, for each (guess_check, null) pair of models, the difference of an arm's OOD effect between
    them (the mechanism's evidence), paired by problem. Verdicts compare each effect with its prediction.

    strata (problem_id -> label, e.g. the sum's length) adds the OOD effect per stratum, as rows
    with that `stratum` (the others: "all"); their Holm correction is a family of its own, so a
    stratum never enters the headline's."""
    rows, strata_ids = [], strata.groupby(strata).groups if strata is not None else {}
    trained = problems[(problems["method"] != "base") & problems["model"].isin(worlds)]
    arms = trained.drop_duplicates(["model", "method", "richness", "ablation", "coverage"])
    for a in arms.itertuples():
        axes = {"method": a.method, "richness": a.richness, "ablation": a.ablation, "coverage": a.coverage}
        free, on = _arm(problems, a.model, sets.ood, **axes), _arm(problems, a.model, sets.ood_on, **axes)
        base_free, base_on = _base(problems, a.model, sets.ood), _base(problems, a.model, sets.ood_on)
        both = free.merge(on, on=["seed", "problem_id"], suffixes=("_free", "_on"))
        inputs = {
            "ood": (free, base_free),
            "ood_on": (on, base_on),
            # Empty (skipped) unless the arms are evaluated with checking off too (eval set variants).
            "ood_off": (_arm(problems, a.model, sets.ood_off, **axes), _base(problems, a.model, sets.ood_off)),
            "recovery": (
                both.assign(value=both["value_on"] - both["value_free"])[["seed", "problem_id", "value"]],
                (base_on - base_free).dropna(),
            ),
            "in_domain": (_arm(problems, a.model, sets.in_domain, **axes), _base(problems, a.model, sets.in_domain)),
            "epistemic": (
                _arm(problems, a.model, sets.ood, "epistemic_count", **axes),
                _base(problems, a.model, sets.ood, "epistemic_count"),
            ),
        }
        measured = [(q, "all", treated, reference) for q, (treated, reference) in inputs.items()]
        treated, reference = inputs["ood"]
        for label, ids in strata_ids.items():
            subset = (treated[treated["problem_id"].isin(ids)], reference[reference.index.isin(ids)])
            measured.append(("ood", f"ood, {label}", *subset))
        for quantity, stratum, treated, reference in measured:
            if treated.empty or reference.empty:
                continue
            rows.append(
                {
                    "model": a.model,
                    "world": worlds[a.model],
                    **axes,
                    "quantity": quantity,
                    "stratum": stratum,
                    "predicted": predict(worlds[a.model], a.method, a.richness, a.ablation, quantity),
                    **seed_effect(treated, reference),
                }
            )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    between = _between_worlds(problems, pairs, sets, arms).assign(stratum="all")
    table = pd.concat([table, between], ignore_index=True)
    # Strata and the forced-off effect (what the decomposition reads) are details: a family of their own.
    headline = (table["stratum"] == "all") & (table["quantity"] != "ood_off")
    table["p_holm"] = np.nan
    for family in (headline, ~headline):
        table.loc[family, "p_holm"] = holm(table.loc[family, "p_value"])
    table["verdict"] = [_against_prediction(r) for r in table.itertuples()]
    return table


def _between_worlds(problems, pairs, sets, arms) -> pd.DataFrame:
    """guess_check minus null, per arm present in both: the OOD effect (arm - its base), paired by problem."""
    rows = []
    for model, null in pairs:
        for a in arms[arms["model"] == model].itertuples():
            axes = {"method": a.method, "richness": a.richness, "ablation": a.ablation, "coverage": a.coverage}
            effects = []
            for m in (model, null):
                arm = _arm(problems, m, sets.ood, **axes)
                if arm.empty:
                    break
                effects.append(arm.groupby("problem_id")["value"].mean() - _base(problems, m, sets.ood))
            if len(effects) < 2:
                continue
            result = paired_difference(effects[0].dropna(), effects[1].dropna())
            sign = predict("guess_check", a.method, a.richness, a.ablation, "ood")
            rows.append(
                {
                    "model": f"{model} - {null}",
                    "world": "guess_check - null",
                    **axes,
                    "quantity": "ood",
                    "predicted": sign,
                    **result,
                    "n_seeds": int(problems.loc[problems["model"] == model, "seed"].nunique()),
                }
            )
    return pd.DataFrame(rows)


def _against_prediction(r) -> str:
    """A prediction of a sign is met when the effect is significant that way; of no effect, when the
    CI lies inside the margin."""
    margin = _margin(r.quantity)
    if r.predicted == 0:
        v = verdict(r.effect, r.ci_low, r.ci_high, r.p_holm, +1, margin, r.min_p)
        if v.startswith("not supported (no effect"):
            return "as predicted (no effect)"
        if v in ("supported", "not supported (effect in the opposite direction)"):
            return "not as predicted (an effect)"
        return v
    v = verdict(r.effect, r.ci_low, r.ci_high, r.p_holm, r.predicted, margin, r.min_p)
    return {
        "supported": "as predicted",
        "not supported (effect in the opposite direction)": "opposite to prediction",
    }.get(v, "not as predicted (no effect)" if v.startswith("not supported (no effect") else v)


def _seed_effects(r) -> str:
    """Each seed's effect; the between-world rows pair problems with seeds averaged, so they have none."""
    effects = getattr(r, "seed_effects", None)
    return effects if isinstance(effects, str) and effects else "—"


def _fmt(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:+.3f}"


def _dose_response(effects: pd.DataFrame, gates: dict[str, dict]) -> list[str]:
    """Across the guess_check models (pretraining seeds, doses of checking): each arm's OOD effect
    beside the dose and what checking is worth to the base model (the gate's on - off)."""
    models = [m for m, g in gates.items() if g["world"] == "guess_check"]
    if len(models) < 2:
        return []
    ood = effects[(effects["quantity"] == "ood") & effects["model"].isin(models)]
    arms = list(dict.fromkeys(ood[["method", "richness", "ablation"]].astype(str).agg("/".join, axis=1)))
    lines = [
        "**Dose-response and pretraining seeds** (guess_check models): the OOD effect of each arm beside",
        "how often the model was pretrained to check (p_check) and what checking is worth to its base model.",
        "",
        "| model | pretraining seed | p_check | checking worth (OOD) | " + " | ".join(arms) + " |",
        "|---" * (4 + len(arms)) + "|",
    ]
    for model in models:
        g, mine = gates[model], ood[ood["model"] == model]
        cells = []
        for arm in arms:
            row = mine[mine[["method", "richness", "ablation"]].astype(str).agg("/".join, axis=1) == arm]
            cells.append(_fmt(row["effect"].mean()) if len(row) else "—")
        lines.append(
            f"| {model} | {g.get('seed', '—')} | {g.get('p_check', '—')} | {g['ood_value']:+.3f} | "
            + " | ".join(cells)
            + " |"
        )
    return lines + [""]


def _pretraining_seeds(gates: dict[str, dict]) -> list[str]:
    """Says so where a world has fewer than 3 pretraining seeds: its intervals then carry the
    training seeds' variance only, not the pretraining's."""
    seeds = {}
    for g in gates.values():
        seeds.setdefault(g["world"], set()).add(g.get("seed"))
    few = {world: len(s) for world, s in seeds.items() if len(s) < 3}
    if not few:
        return []
    counts = ", ".join(f"{world}: {n}" for world, n in few.items())
    return [
        f"*Pretraining seeds per world* ({counts}) are fewer than 3: the intervals below carry the",
        "variance of training seeds and problems, not that of pretraining (config/organism.yaml runs 3).",
        "",
    ]


def _effects_table(g: pd.DataFrame, what: str) -> list[str]:
    lines = [
        f"| arm | {what} | predicted | effect | 95% CI | p (Holm) | seeds | seed effects | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in g.itertuples():
        arm = f"{r.method}/{r.richness}/{r.ablation}/c{int(r.coverage)}"
        predicted = {-1: "lower", 0: "none", 1: "higher"}[int(r.predicted)]
        lines.append(
            f"| {arm} | {getattr(r, what)} | {predicted} | {_fmt(r.effect)} | [{_fmt(r.ci_low)}, {_fmt(r.ci_high)}] | "
            f"{r.p_holm:.3g} | {int(r.n_seeds)} | {_seed_effects(r)} | **{r.verdict}** |"
        )
    return lines


def render_results(effects: pd.DataFrame, gates: dict[str, dict]) -> str:
    """The gate per model, then each quantity's results beside its prediction, per world."""
    lines = ["## The model organism: gate, results beside the predictions", ""]
    if gates:
        lines += [
            "**Gate** (base model, before any distillation; accuracy with checking forced on vs forced off):",
            "",
            "| model | world | OOD off | OOD on | value OOD | in-domain off | in-domain on | value in-domain | "
            "Wait after wrong / right guess, OOD | the same in domain (not gated) | passed |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for model, g in gates.items():
            lines.append(
                f"| {model} | {g['world']} | {g['ood_off']:.3f} | {g['ood_on']:.3f} | {g['ood_value']:+.3f} | "
                f"{g['in_domain_off']:.3f} | {g['in_domain_on']:.3f} | {g['in_domain_value']:+.3f} | "
                f"{g['wait_after_wrong_guess']:.2f} / {g['wait_after_right_guess']:.2f} | "
                f"{g['wait_after_wrong_guess_in_domain']:.2f} / {g['wait_after_right_guess_in_domain']:.2f} "
                f"({g['n_wrong_guesses_in_domain']} wrong) | {g['passed']} |"
            )
        lines.append("")
    if effects.empty:
        return "\n".join(lines + ["No trained arm of a guess world in this grid.", ""]) + "\n"
    strata = effects[effects["stratum"] != "all"]
    effects = effects[effects["stratum"] == "all"]
    lines += _dose_response(effects, gates) + _pretraining_seeds(gates)
    lines += [
        "Each arm minus its base model on the same problems (seeds averaged per problem; the re-enable",
        "recovery is the arm's (forced on - free) minus the base's). 95% CIs resample seeds then problems",
        "(hierarchical bootstrap) with 3 or more seeds, problems otherwise; p from sign-flip tests over",
        "problems, Holm-corrected over this table; seed effects are each seed's own effect (the spread).",
        "The guess_check - null rows are the mechanism's evidence: the same arm's OOD effect in the world",
        "where checking is worth accuracy minus the world where it is not.",
        "",
    ]
    for (model, world), g in effects.groupby(["model", "world"], sort=False):
        lines += [f"**{model}** (world {world})", ""] + _effects_table(g, "quantity") + [""]
    if len(strata):
        lines += [
            "**OOD strata** (the same OOD effect within each stratum of problems, e.g. sum length; reported",
            "apart and Holm-corrected as a family of their own, never pooled into the headline above):",
            "",
        ]
        for (model, world), g in strata.groupby(["model", "world"], sort=False):
            lines += [f"{model} (world {world})", ""] + _effects_table(g, "stratum") + [""]
    lines += ["![Does OOD accuracy follow checking, per world?](figures/organism.png)", ""]
    return "\n".join(lines) + "\n"
