"""The organism over pretrained draws, the unit of replication (issue 22): toy models of one world
that differ only in their pretraining seed or micro-batch split (the floating-point order). Per draw:
the solution arm's effects and its verdict, and the decomposition of its OOD change; across draws:
the fraction of draws with each verdict (Clopper-Pearson intervals) and two pre-registered primary
tests with draws as units.

Verdict of a draw (the arm's effects against its base model, 95% CIs as in organism.parquet):
- damage: checking forced on is clearly lower (CI below 0 and the effect beyond the no-effect margin):
  the ability to check, not only its use, is gone;
- suppression: otherwise, OOD is lower (CI below 0 and the effect beyond the margin, as for damage) and
  forced-on lies within the margin or the recovery (forced-on effect minus free effect) is positive
  (CI above 0): the drop is checking not used;
- none: neither.

Decomposition of the OOD change (free OOD samples; a sample checks when its response holds the
check's opening "let me check"): within a stratum (sum length), accuracy = r a_c + (1 - r) a_n with r
the share of samples that check and a_c, a_n the accuracy of those that check and those that do not;
base (0) to arm (1):

    delta = (r1 - r0)(a_c0 - a_n0)      # (a) rate: how much less often it checks x what a check was worth
          + r1 (a_c1 - a_c0)            # (b) accuracy when it checks
          + (1 - r1)(a_n1 - a_n0)       # (c) accuracy when it does not

which sums exactly; the draw's terms are the strata's weighted by their share of problems (equal
samples per problem, so they sum to the pooled change). "What a check was worth" is observational
(the model chooses when to check): the gate's forced on - off is the causal value.

The primary tests, pre-registered (written here before any draws' run) and Holm-corrected together
at familywise size 0.05: (1) the between-world difference of the arm's OOD effect (guess_check minus
null, per seed pair) is negative; (2) the rate term (a) carries more than half of the guess_check
draws' mean OOD drop, i.e. mean over draws of (a) - total / 2 is negative. Both are exact one-sided
sign-flip tests over draws, so n draws can reach p = 2^-n at best (6 draws: 0.016).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from selfdistill.organism import MARGIN
from selfdistill.stats import holm, paired_difference, select

CHECK = "let me check"  # the opening of a check in both guess worlds (selfdistill.data.toy.guess_trace)
ARM = {"method": "onpolicy", "richness": "solution", "ablation": "standard"}  # the solution arm
CONTROL = {**ARM, "richness": "none"}  # the no-context control
PRESERVE = {**ARM, "ablation": "preserve"}  # the uncertainty ablation: the student's hedging kept (claim d)
VERDICTS = ("suppression", "damage", "none")
TERMS = ("rate_term", "check_accuracy_term", "nocheck_accuracy_term")
EFFECTS = ("ood", "ood_on", "ood_off", "recovery", "in_domain")  # the arm's effects a draw's row carries
CLAIM_D = ("ood", "ood_on", "epistemic")  # the preserve arm's effects a draw's row carries
ALPHA = 0.05  # familywise size of the two primary tests
SHARE = 0.5  # test (2): the rate term carries more than this share of the drop
DRAW = ("pretraining_seed", "micro_batch_size")  # what tells a design's draws apart


# ---- one draw ---------------------------------------------------------------------------------


def classify(ood: dict, ood_on: dict, recovery: dict, margin: float = MARGIN) -> str:
    """A draw's verdict from its arm's effects, each a dict with effect, ci_low and ci_high."""
    if ood_on["ci_high"] < 0 and ood_on["effect"] < -margin:
        return "damage"
    forced_on_unchanged = -margin <= ood_on["ci_low"] and ood_on["ci_high"] <= margin
    if ood["ci_high"] < 0 and ood["effect"] < -margin and (forced_on_unchanged or recovery["ci_low"] > 0):
        return "suppression"
    return "none"


def opens_a_check(responses: pd.Series) -> np.ndarray:
    """Per response: whether it opens a check of the guess worlds."""
    return responses.str.contains(CHECK, regex=False).to_numpy(bool)


def checked_samples(samples: pd.DataFrame, checks=opens_a_check) -> pd.DataFrame:
    """Per-sample evaluations -> problem_id, checked (`checks` of the response), correct."""
    return pd.DataFrame(
        {
            "problem_id": samples["problem_id"].to_numpy(),
            "checked": checks(samples["response"]),
            "correct": samples["correct"].to_numpy(bool),
        }
    )


def _times(weight: float, x: float) -> float:
    """weight * x, 0 where the weight is 0 (a conditional accuracy of an empty group is undefined)."""
    return 0.0 if weight == 0 else weight * x


def _conditional(correct: np.ndarray, mask: np.ndarray) -> float:
    return float(correct[mask].mean()) if mask.any() else float("nan")


def decompose(base_checked, base_correct, arm_checked, arm_correct) -> dict:
    """The change of accuracy from base to arm split into (a) rate, (b) accuracy when checking and
    (c) accuracy when not (the module docstring's formula); arrays of per-sample booleans."""
    c0, y0 = np.asarray(base_checked, bool), np.asarray(base_correct, float)
    c1, y1 = np.asarray(arm_checked, bool), np.asarray(arm_correct, float)
    r0, r1 = float(c0.mean()), float(c1.mean())
    ac0, an0, ac1, an1 = _conditional(y0, c0), _conditional(y0, ~c0), _conditional(y1, c1), _conditional(y1, ~c1)
    return {
        "rate_base": r0,
        "rate_arm": r1,
        "acc_check_base": ac0,
        "acc_nocheck_base": an0,
        "acc_check_arm": ac1,
        "acc_nocheck_arm": an1,
        "rate_term": _times(r1 - r0, ac0 - an0),
        "check_accuracy_term": _times(r1, ac1 - ac0),
        "nocheck_accuracy_term": _times(1 - r1, an1 - an0),
        "total": float(y1.mean() - y0.mean()),
    }


def decompose_strata(base: pd.DataFrame, arm: pd.DataFrame, strata: pd.Series) -> dict:
    """decompose within each stratum (problem_id -> label), the terms weighted by the stratum's share
    of the base's problems; base and arm have columns problem_id, checked, correct."""
    labels = base["problem_id"].map(strata)
    weights = base.drop_duplicates("problem_id")["problem_id"].map(strata).value_counts(normalize=True)
    out = {"total": 0.0, **{t: 0.0 for t in TERMS}, "strata": {}}
    for label, weight in weights.items():
        b, a = base[labels == label], arm[arm["problem_id"].map(strata) == label]
        part = decompose(b["checked"], b["correct"], a["checked"], a["correct"])
        out["strata"][label] = {"weight": float(weight), **part}
        for key in ("total", *TERMS):
            out[key] += weight * part[key]
    out["rate_base"] = float(base["checked"].mean())
    out["rate_arm"] = float(arm["checked"].mean())
    out["rate_share"] = out["rate_term"] / out["total"] if out["total"] else float("nan")
    return out


def check_decomposition(parts: dict, where: str, tolerance: float = 1e-9) -> None:
    """Raises unless the terms, where all defined, sum to the change they split: a decomposition
    that misses or double-counts a term would silently misattribute the drop."""
    terms = [parts[t] for t in TERMS]
    if not any(np.isnan(terms)) and abs(sum(terms) - parts["total"]) > tolerance:
        listed = ", ".join(f"{t} {parts[t]:+.6f}" for t in TERMS)
        raise ValueError(
            f"{where}: the terms ({listed}) sum to {sum(terms):+.6f}, not to the change {parts['total']:+.6f}"
        )


# ---- across draws ------------------------------------------------------------------------------


def verdict_fractions(verdicts: list[str], level: float = 0.95) -> dict:
    """Per verdict: count, fraction and its Clopper-Pearson (exact binomial) interval."""
    n, out = len(verdicts), {}
    for label in VERDICTS:
        k = sum(v == label for v in verdicts)
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="exact") if n else None
        out[label] = {
            "k": k,
            "n": n,
            "fraction": k / n if n else float("nan"),
            "ci_low": float(ci.low) if ci else float("nan"),
            "ci_high": float(ci.high) if ci else float("nan"),
        }
    return out


def between_worlds(differences: pd.Series) -> dict:
    """The between-world difference of the OOD effect with draws (seed pairs) as units: mean, a
    bootstrap CI, the exact two-sided sign-flip p (and the smallest p n pairs can give), and a
    one-sample t-test."""
    d = differences.astype(float)
    out = paired_difference(d, pd.Series(0.0, index=d.index))
    t = stats.ttest_1samp(d.to_numpy(), 0.0) if len(d) > 1 else None
    out["t_p_value"] = float(t.pvalue) if t is not None else float("nan")
    out["t_p_value_one_sided_lower"] = float(t.pvalue / 2 if t.statistic < 0 else 1 - t.pvalue / 2) if t else np.nan
    out["n_pairs"] = out.pop("n_problems")
    return out


def sign_flip_less(values) -> float:
    """One-sided sign-flip p that the mean of values is below 0: exact (all 2^n sign patterns) up to
    16 values, from 2^16 random patterns beyond."""
    x = np.asarray(values, float)
    if len(x) == 0:
        return float("nan")
    result = stats.permutation_test(
        (x,), np.mean, permutation_type="samples", alternative="less", n_resamples=2**16, random_state=0
    )
    return float(result.pvalue)


# ---- the workflow's tables -----------------------------------------------------------------------


def _effect(effects: pd.DataFrame, model: str, arm: dict, coverage, quantity: str) -> dict:
    rows = effects[
        (effects["model"] == model)
        & (effects["stratum"] == "all")
        & (effects["quantity"] == quantity)
        & (effects["coverage"] == coverage)
        & (effects["method"] == arm["method"])
        & (effects["richness"] == arm["richness"])
        & (effects["ablation"] == arm["ablation"])
    ]
    if len(rows) > 1:
        raise ValueError(f"organism table: {len(rows)} rows for {model} {arm} c{coverage} {quantity}, expected 1")
    if rows.empty:
        return {"effect": np.nan, "ci_low": np.nan, "ci_high": np.nan}
    r = rows.iloc[0]
    return {k: float(r[k]) for k in ("effect", "ci_low", "ci_high")}


def draw_table(
    effects: pd.DataFrame,
    draws: dict[str, dict],
    samples: pd.DataFrame,
    strata: pd.Series,
    pairs: list[tuple[str, str]] = (),
) -> pd.DataFrame:
    """One row per pretrained draw and coverage of the solution arm: its effects (from the organism
    table), verdict, the no-context control's OOD effect, its guess_check - null difference (for a
    guess_check draw with a null partner) and the decomposition of its OOD change.

    draws: model -> {world, design, seed} (selfdistill.toy_worlds.pretrained_draws); samples: the
    free OOD samples of the draws' base models and arms (checked_samples with the grid axes);
    strata: problem_id -> stratum label."""
    partner = dict(pairs)
    arms = select(effects, **ARM)
    arms = arms[arms["model"].isin(draws) & (arms["stratum"] == "all")]
    rows = []
    for model, coverage in arms[["model", "coverage"]].drop_duplicates().itertuples(index=False):
        draw = draws[model]
        measured = {q: _effect(effects, model, ARM, coverage, q) for q in EFFECTS}
        base = select(samples, model=model, method="base")
        arm = select(samples, model=model, coverage=coverage, **ARM)
        parts = decompose_strata(base, arm, strata)
        where = f"draw {model} (coverage {coverage})"
        check_decomposition(parts, where)
        if abs(parts["total"] - measured["ood"]["effect"]) > 1e-9:
            raise ValueError(
                f"{where}: the decomposed OOD change {parts['total']:+.6f} is not the arm's OOD effect "
                f"{measured['ood']['effect']:+.6f} in the organism table: the samples are not the effect's"
            )
        null = partner.get(model)
        between = _effect(effects, f"{model} - {null}", ARM, coverage, "ood") if null else {"effect": np.nan}
        rows.append(
            {
                "design": draw["design"],
                "world": draw["world"],
                "model": model,
                "pretraining_seed": draw["seed"],
                "micro_batch_size": draw["micro_batch_size"],
                "coverage": coverage,
                **{f"{q}_{k}": v for q, e in measured.items() for k, v in e.items()},
                "control_ood_effect": _effect(effects, model, CONTROL, coverage, "ood")["effect"],
                **{f"preserve_{q}_effect": _effect(effects, model, PRESERVE, coverage, q)["effect"] for q in CLAIM_D},
                "epistemic_effect": _effect(effects, model, ARM, coverage, "epistemic")["effect"],
                "verdict": classify(measured["ood"], measured["ood_on"], measured["recovery"]),
                "null_partner": null or "",
                "between_world_effect": between["effect"],
                **{k: v for k, v in parts.items() if k != "strata"},
                **_pooled_accuracies(base, "base"),
                **_pooled_accuracies(arm, "arm"),
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    check_designs(table)
    order = [table["world"] != "guess_check", table["design"], table["coverage"], *(table[k] for k in DRAW)]
    return table.iloc[np.lexsort(order[::-1])].reset_index(drop=True)


def _pooled_accuracies(samples: pd.DataFrame, which: str) -> dict:
    """Accuracy of the samples that check and of those that do not, over all strata (for the page)."""
    correct, checked = samples["correct"].to_numpy(float), samples["checked"].to_numpy(bool)
    return {
        f"acc_check_{which}": _conditional(correct, checked),
        f"acc_nocheck_{which}": _conditional(correct, ~checked),
    }


def check_designs(table: pd.DataFrame) -> None:
    """Raises unless each design (the draws pooled across) is one world, and each draw is counted
    once per coverage: pooling worlds would mix the method's effect with the world's."""
    for (design, coverage), g in table.groupby(["design", "coverage"]):
        worlds = sorted(g["world"].unique())
        if len(worlds) > 1:
            raise ValueError(f"design {design} pools draws of worlds {', '.join(worlds)}: a design is one world")
        repeated = g[list(DRAW)][g[list(DRAW)].duplicated()].to_numpy().tolist()
        if repeated:
            raise ValueError(
                f"design {design} (coverage {coverage}) counts draws (pretraining seed, micro-batch) {repeated} twice"
            )


def primary_tests(table: pd.DataFrame) -> pd.DataFrame:
    """The two pre-registered tests (module docstring) per guess_check design and coverage, draws
    as units, Holm-corrected together over the table."""
    if table.empty:
        return pd.DataFrame()
    check_designs(table)
    rows = []
    for (design, coverage), g in table[table["world"] == "guess_check"].groupby(["design", "coverage"], sort=False):
        d = g["between_world_effect"].dropna().to_numpy(float)
        rows.append(
            {
                "design": design,
                "coverage": coverage,
                "test": "between worlds",
                "hypothesis": "the arm's OOD effect is lower in guess_check than in null (seed pairs)",
                "n_draws": len(d),
                "estimate": float(d.mean()) if len(d) else np.nan,
                **_bootstrap(np.mean, d),
                "p_value": sign_flip_less(d) if len(d) >= 2 else np.nan,
                "min_p": 2.0 ** -len(d) if len(d) else np.nan,
            }
        )
        defined = g.dropna(subset=["rate_term", "total"])
        rate, total = defined["rate_term"].to_numpy(float), defined["total"].to_numpy(float)
        drop = len(total) >= 2 and total.mean() < 0
        rows.append(
            {
                "design": design,
                "coverage": coverage,
                "test": "rate share",
                "hypothesis": f"the rate term (a) carries more than {SHARE:g} of the mean OOD drop",
                "n_draws": len(total),
                "estimate": float(rate.mean() / total.mean()) if len(total) and total.mean() else np.nan,
                **_bootstrap(lambda a, t: np.mean(a) / np.mean(t), rate, total),
                # share > SHARE of a drop (total < 0) <=> rate_term - SHARE * total < 0
                "p_value": sign_flip_less(rate - SHARE * total) if drop else np.nan,
                "min_p": 2.0 ** -len(total) if len(total) else np.nan,
            }
        )
    tests = pd.DataFrame(rows)
    if tests.empty:
        return tests
    tests["p_holm"] = holm(tests["p_value"])
    family = int(tests["p_value"].notna().sum())
    tests["verdict"] = [_test_verdict(r, family) for r in tests.itertuples()]
    return tests


def _bootstrap(statistic, *samples) -> dict:
    """Percentile bootstrap 95% CI over draws (paired across samples); NaN with fewer than 3 draws."""
    if len(samples[0]) < 3 or np.all(samples[0] == samples[0][0]):
        return {"ci_low": np.nan, "ci_high": np.nan}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ci = stats.bootstrap(
            samples, statistic, paired=True, vectorized=False, n_resamples=2000, method="percentile", random_state=0
        ).confidence_interval
    return {"ci_low": float(ci.low), "ci_high": float(ci.high)}


def _test_verdict(r, family: int) -> str:
    if np.isnan(r.p_value):
        return "not tested (no OOD drop to split)" if r.test == "rate share" and r.n_draws >= 2 else "not tested"
    if r.min_p * family >= ALPHA:  # Holm's first step multiplies the smallest p by the family's size
        return f"inconclusive (too few draws: the smallest attainable p is {r.min_p:.3g})"
    return "supported" if r.p_holm < ALPHA else "not supported"


# ---- the findings page's section -----------------------------------------------------------------------


def _f(x, digits: int = 3, sign: bool = True) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "n/a"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _p(p: float) -> str:
    return "n/a" if np.isnan(p) else f"{p:.3g}"


def _ci(r, quantity: str) -> str:
    effect, low, high = (getattr(r, f"{quantity}_{k}") for k in ("effect", "ci_low", "ci_high"))
    return f"{_f(effect)} [{_f(low)}, {_f(high)}]"


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""]


ONE_DRAW = (
    "**Across pretrained draws:** the verdicts above belong to one pretrained draw per world (one pretraining "
    "seed); to report the method's, run several: `snakemake --cores 2 --configfile config/draws.yaml` (6 draws "
    "per world)."
)


def render_draws(table: pd.DataFrame, tests: pd.DataFrame | None = None) -> list[str]:
    """The findings page's section on the draws: per draw its verdict and effects, the verdicts'
    fractions per design, the decomposition per draw, the primary tests."""
    if table.empty:
        return [ONE_DRAW, ""]
    check_designs(table)
    lines = [
        "## Across pretrained draws",
        "",
        "A pretrained draw is a toy model of one world differing from the others only in its pretraining seed or",
        "micro-batch split (the floating-point order, as between machines);",
        "each draw's on-policy arm with the solution teacher against that draw's base model (95% CIs over",
        "training seeds and problems, as in the headline). Recovery = forced-on effect minus free effect.",
        f"Verdict: **damage** when OOD with checking forced on is lower beyond ±{MARGIN:g} (CI below 0);",
        f"**suppression** otherwise when OOD is lower beyond ±{MARGIN:g} (CI below 0) and forced on is within the",
        "margin or the recovery positive; **none** otherwise.",
        "",
    ]
    header = ["world", "draw (model)", "pretraining seed / split", "coverage", "OOD", "OOD, checking forced on"]
    header += ["OOD, checking forced off", "recovery", "in domain", "control (none teacher) OOD", "guess_check − null"]
    header += ["verdict"]
    lines += _table(
        header,
        [
            [r.world, r.model, f"{r.pretraining_seed} / {r.micro_batch_size}", r.coverage]
            + [_ci(r, q) for q in EFFECTS]
            + [_f(r.control_ood_effect), _f(r.between_world_effect), f"**{r.verdict}**"]
            for r in table.itertuples()
        ],
    )
    lines += ["**Verdicts across draws** (count of draws, Clopper-Pearson 95% interval of the fraction):", ""]
    fractions = []
    for (design, coverage), g in table.groupby(["design", "coverage"], sort=False):
        cells = [
            f"{f['k']}/{f['n']} [{f['ci_low']:.2f}, {f['ci_high']:.2f}]"
            for f in verdict_fractions(g["verdict"].tolist()).values()
        ]
        fractions.append([f"{g['world'].iloc[0]} ({design})", coverage, *cells])
    lines += _table(["world (design)", "coverage", *VERDICTS], fractions)
    lines += [
        "**Decomposition of each draw's OOD change** (free OOD samples; a sample checks when it says",
        f'"{CHECK}"; per sum-length stratum, weighted by its share of problems): (a) rate',
        "(r1 − r0)(a_c0 − a_n0), (b) when checking r1 (a_c1 − a_c0), (c) when not (1 − r1)(a_n1 − a_n0); they",
        "sum to the OOD change. What a check was worth (a_c0 − a_n0) is observational: the gate's forced on −",
        "off is the causal value.",
        "",
    ]
    header = ["world", "draw (model)", "coverage", "checking rate, base → arm", "accuracy when checking"]
    header += ["accuracy when not", "(a) rate", "(b) when checking", "(c) when not", "OOD change", "share (a)"]
    rows = []
    for r in table.itertuples():
        rows.append(
            [r.world, r.model, r.coverage, f"{r.rate_base:.3f} → {r.rate_arm:.3f}"]
            + [f"{_f(r.acc_check_base, sign=False)} → {_f(r.acc_check_arm, sign=False)}"]
            + [f"{_f(r.acc_nocheck_base, sign=False)} → {_f(r.acc_nocheck_arm, sign=False)}"]
            + [_f(getattr(r, t)) for t in (*TERMS, "total")]
            + [_f(r.rate_share, 2, sign=False)]
        )
    lines += _table(header, rows)
    return lines + _render_claim_d(table) + _render_tests(primary_tests(table) if tests is None else tests)


def _render_claim_d(table: pd.DataFrame) -> list[str]:
    """Claim (d) per draw: the preserve arm beside the standard one (both against the draw's base)."""
    rows = table.dropna(subset=["preserve_ood_effect"])
    if rows.empty:
        return []
    lines = [
        "**The uncertainty ablation per draw** (claim (d); on-policy from the solution teacher with the",
        "student's own distribution kept at its epistemic words, `preserve`, beside `standard`; each against",
        "the draw's base model; predicted: `preserve` keeps the hedging and the OOD accuracy, no effect within",
        f"±{MARGIN:g}):",
        "",
    ]
    header = ["world", "draw (model)", "coverage", "OOD: preserve", "OOD: standard", "preserve − standard"]
    header += ["forced on: preserve", "epistemic words: preserve", "epistemic words: standard"]
    lines += _table(
        header,
        [
            [r.world, r.model, r.coverage, _f(r.preserve_ood_effect), _f(r.ood_effect)]
            + [_f(r.preserve_ood_effect - r.ood_effect), _f(r.preserve_ood_on_effect)]
            + [_f(r.preserve_epistemic_effect, 2), _f(r.epistemic_effect, 2)]
            for r in rows.itertuples()
        ],
    )
    kept = [
        f"{g['world'].iloc[0]} ({design}, coverage {coverage}): "
        f"{int((g['preserve_ood_effect'] >= -MARGIN).sum())}/{len(g)} draws"
        for (design, coverage), g in rows.groupby(["design", "coverage"], sort=False)
    ]
    return lines + ["OOD accuracy kept under `preserve` (effect ≥ −" + f"{MARGIN:g}): " + "; ".join(kept) + ".", ""]


def _render_tests(tests: pd.DataFrame) -> list[str]:
    lines = [
        "**Primary tests** (pre-registered; draws are the units; exact one-sided sign-flip tests over draws,",
        f"Holm-corrected together over this table at familywise size {ALPHA:g}; 95% CIs: percentile bootstrap",
        "over draws).",
        "(1) between worlds: the seed pairs' differences of the arm's OOD effect (guess_check − null) are",
        f"negative on average; (2) rate share: (a) carries more than {SHARE:g} of the guess_check draws' mean OOD",
        f"drop, tested as mean over draws of (a) − {SHARE:g} × OOD change < 0.",
        "",
    ]
    if tests.empty:
        return lines + ["No guess_check design with draws: nothing to test.", ""]
    header = ["test", "design", "coverage", "draws", "estimate [95% CI]", "p", "smallest attainable p", "p (Holm)"]
    rows = [
        [r.test, r.design, r.coverage, r.n_draws, f"{_f(r.estimate)} [{_f(r.ci_low)}, {_f(r.ci_high)}]"]
        + [_p(r.p_value), _p(r.min_p), _p(r.p_holm), f"**{r.verdict}**"]
        for r in tests.itertuples()
    ]
    return lines + _table([*header, "verdict"], rows)
