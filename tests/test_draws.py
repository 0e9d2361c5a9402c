"""selfdistill.draws against hand-computed cases: the verdict of a draw, the
Clopper-Pearson interval of a verdict's fraction, the decomposition of the OOD change (which must
sum to the change), and the between-world test with draws as units."""

import math
import random

import numpy as np
import pandas as pd
import pytest

from selfdistill import draws
from selfdistill.data import toy


def effect(e, low, high):
    return {"effect": e, "ci_low": low, "ci_high": high}


# The documented draws (docs/organism.md, issue 22): the README's seed-0 draw and the other machine's.
SUPPRESSION = (effect(-0.079, -0.120, -0.043), effect(-0.001, -0.008, 0.005), effect(0.078, 0.042, 0.116))
DAMAGE = (effect(-0.318, -0.447, -0.181), effect(-0.505, -0.711, -0.273), effect(-0.187, -0.302, -0.073))


@pytest.mark.parametrize(
    "effects, expected",
    [
        (SUPPRESSION, "suppression"),
        (DAMAGE, "damage"),
        # no OOD drop, nothing forced on: the control arm
        ((effect(-0.003, -0.013, 0.005), effect(-0.001, -0.014, 0.012), effect(0.001, -0.008, 0.012)), "none"),
        # forced on not within the margin, but the recovery positive: suppression
        ((effect(-0.10, -0.15, -0.05), effect(-0.03, -0.07, 0.01), effect(0.07, 0.02, 0.12)), "suppression"),
        # forced on significantly lower but by less than the margin, recovery positive: not damage
        ((effect(-0.10, -0.15, -0.05), effect(-0.03, -0.045, -0.01), effect(0.07, 0.02, 0.12)), "suppression"),
        # OOD lower, forced on neither unchanged nor clearly lower, no recovery: neither verdict
        ((effect(-0.10, -0.15, -0.05), effect(-0.04, -0.09, 0.01), effect(0.06, -0.01, 0.12)), "none"),
        # a significant OOD drop within the no-effect margin (the null draw seed 3 of 2026-12-06): none
        ((effect(-0.020, -0.035, -0.004), effect(-0.016, -0.035, 0.0), effect(0.004, -0.008, 0.016)), "none"),
        # forced on clearly lower without a free OOD drop is still damage
        ((effect(-0.02, -0.06, 0.02), effect(-0.20, -0.30, -0.10), effect(-0.18, -0.25, -0.10)), "damage"),
    ],
)
def test_classify(effects, expected):
    assert draws.classify(*effects) == expected


def test_verdict_fractions_are_clopper_pearson():
    # Hand values: k = 0 of n: [0, 1 - 0.025^(1/n)]; k = n: [0.025^(1/n), 1]; 3 of 6: [0.1181, 0.8819].
    out = draws.verdict_fractions(["suppression"] * 3 + ["damage"] * 3)
    assert out["suppression"]["k"] == 3 and out["suppression"]["fraction"] == 0.5
    assert out["suppression"]["ci_low"] == pytest.approx(0.11812, abs=1e-4)
    assert out["suppression"]["ci_high"] == pytest.approx(0.88188, abs=1e-4)
    assert out["none"]["ci_low"] == 0 and out["none"]["ci_high"] == pytest.approx(1 - 0.025 ** (1 / 6), abs=1e-9)
    every = draws.verdict_fractions(["damage"] * 6)["damage"]
    assert every["ci_low"] == pytest.approx(0.025 ** (1 / 6), abs=1e-9) and every["ci_high"] == 1


def sums_to_total(parts: dict) -> bool:
    return math.isclose(sum(parts[t] for t in draws.TERMS), parts["total"], abs_tol=1e-12)


def samples(n_check, right_check, n_no, right_no):
    checked = [True] * n_check + [False] * n_no
    correct = [True] * right_check + [False] * (n_check - right_check) + [True] * right_no + [False] * (n_no - right_no)
    return checked, correct


def test_decompose_hand_case_and_a_dropped_term_fails_the_sum():
    # base: 6 of 10 check (5 right), 4 do not (1 right): r0 0.6, a_c0 5/6, a_n0 1/4, accuracy 0.6
    # arm: 3 of 10 check (1 right), 7 do not (2 right): r1 0.3, a_c1 1/3, a_n1 2/7, accuracy 0.3
    parts = draws.decompose(*samples(6, 5, 4, 1), *samples(3, 1, 7, 2))
    assert parts["total"] == pytest.approx(-0.3)
    assert parts["rate_term"] == pytest.approx(-0.3 * (5 / 6 - 1 / 4))  # -0.175
    assert parts["check_accuracy_term"] == pytest.approx(0.3 * (1 / 3 - 5 / 6))  # -0.15
    assert parts["nocheck_accuracy_term"] == pytest.approx(0.7 * (2 / 7 - 1 / 4))  # +0.025
    assert sums_to_total(parts)
    # negative control: a decomposition without the no-check term (the two-term split) does not sum
    assert not sums_to_total({**parts, "nocheck_accuracy_term": 0.0})


def test_decompose_sums_on_random_cases_including_empty_groups():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n0, n1 = rng.integers(1, 40, 2)
        rates = rng.choice([0.0, 1.0, rng.random()], 2)
        base = (rng.random(n0) < rates[0], rng.random(n0) < rng.random())
        arm = (rng.random(n1) < rates[1], rng.random(n1) < rng.random())
        parts = draws.decompose(*base, *arm)
        # an empty group in the base leaves "what a check was worth" undefined: only then may a term be NaN
        if not np.isnan(parts["rate_term"]):
            assert sums_to_total(parts)


def test_decompose_strata_weights_strata_and_sums_to_the_pooled_change():
    # Stratum A (1 problem of 4, weight 1/4) and B (3 of 4); 4 samples per problem in both arms.
    def frame(rows):
        return pd.DataFrame(rows, columns=["problem_id", "checked", "correct"])

    base = frame([("a0", True, True)] * 2 + [("a0", False, False)] * 2 + [(f"b{i}", True, True) for i in range(3)] * 4)
    arm = frame(
        [("a0", False, False)] * 4
        + [(f"b{i}", True, i == 0) for i in range(3) for _ in range(2)]
        + [(f"b{i}", False, False) for i in range(3) for _ in range(2)]
    )
    strata = pd.Series({"a0": "A", "b0": "B", "b1": "B", "b2": "B"})
    out = draws.decompose_strata(base, arm, strata)
    # A: r 0.5 -> 0, a_c0 1, a_n0 0, a_n1 0: rate term -0.5, total -0.5.
    # B: r 1 -> 0.5, a_c0 1, a_n0 undefined (no base sample skips the check), a_c1 1/3: the rate term
    #    is undefined, check term 0.5 * (1/3 - 1) = -1/3, no-check term 0.5 * (0 - nan).
    assert out["strata"]["A"]["rate_term"] == pytest.approx(-0.5) and out["strata"]["A"]["weight"] == 0.25
    assert out["strata"]["B"]["check_accuracy_term"] == pytest.approx(-1 / 3)
    pooled = arm["correct"].mean() - base["correct"].mean()  # by hand: 2/16 - 14/16
    assert pooled == pytest.approx(-0.75) and out["total"] == pytest.approx(pooled)


def test_decompose_strata_sums_exactly_when_defined():
    def rows(checks_per_problem):  # 8 problems x 4 samples; a sample is right exactly when it checks
        checked = [j < checks_per_problem for i in range(8) for j in range(4)]
        return pd.DataFrame({"problem_id": [f"p{i}" for i in range(8) for _ in range(4)], "checked": checked})

    base, arm = rows(2), rows(1)
    base["correct"], arm["correct"] = base["checked"], arm["checked"]
    strata = pd.Series({f"p{i}": "5 terms" if i < 4 else "6 terms" for i in range(8)})
    out = draws.decompose_strata(base, arm, strata)
    assert out["total"] == pytest.approx(-0.25) and out["rate_term"] == pytest.approx(-0.25)
    assert out["rate_share"] == pytest.approx(1.0) and sums_to_total(out)


def test_between_worlds_sign_flip_and_t_against_hand_values():
    # d = -1, -2, -3: t = -2 / (1 / sqrt 3) with 2 df, whose two-sided p has the closed form
    # 1 + t / sqrt(2 + t^2); the exact sign-flip p: 2 of 8 sign patterns are as extreme.
    out = draws.between_worlds(pd.Series([-1.0, -2.0, -3.0]))
    t = -2 * math.sqrt(3)
    assert out["t_p_value"] == pytest.approx(1 + t / math.sqrt(2 + t * t))
    assert out["t_p_value_one_sided_lower"] == pytest.approx((1 + t / math.sqrt(2 + t * t)) / 2)
    assert out["p_value"] == pytest.approx(2 / 8) and out["min_p"] == pytest.approx(2 / 8)
    six = draws.between_worlds(pd.Series([-0.1, -0.2, -0.3, -0.05, -0.15, -0.25]))
    assert six["p_value"] == pytest.approx(2 / 64) and six["n_pairs"] == 6


@pytest.mark.parametrize("world", ["guess_check", "null"])
def test_check_marker_is_the_worlds_check(world):
    """A trace holds CHECK exactly when it checks, in both worlds' grammar."""
    rng = random.Random(0)
    for p_check, expected in ((1.0, True), (0.0, False)):
        for n_terms in (2, 5, 6):
            text = "".join(s for s, _ in toy.guess_trace([3] * n_terms, rng, world, p_check, 0.3, 5))
            assert (draws.CHECK in text) is expected, text


def test_sign_flip_less_counts_sign_patterns_by_hand():
    # |x| = 1, 2, 3: the 8 signed sums are 6, 4, 2, 0, 0, -2, -4, -6; the observed -1 - 2 + 3 = 0: 5 of 8 <= it
    assert draws.sign_flip_less([-1.0, -2.0, 3.0]) == pytest.approx(5 / 8)
    assert draws.sign_flip_less([-0.1] * 6) == pytest.approx(1 / 64)


# ---- the workflow's per-draw table, from the organism table and the OOD samples --------------------

ORGANISM_DRAWS = {
    "toy_s0": {"world": "guess_check", "design": "toy_s0", "seed": 0, "micro_batch_size": 16},
    "toy_s1": {"world": "guess_check", "design": "toy_s0", "seed": 1, "micro_batch_size": 16},
    "toy_null_s0": {"world": "null", "design": "toy_null_s0", "seed": 0, "micro_batch_size": 16},
    "toy_null_s1": {"world": "null", "design": "toy_null_s0", "seed": 1, "micro_batch_size": 16},
}
PAIRS = [("toy_s0", "toy_null_s0"), ("toy_s1", "toy_null_s1")]
STRATA = pd.Series({f"p{i}": "5 terms" if i < 4 else "6 terms" for i in range(8)})
CHECKS = "Guess: 7. Hmm, let me check: 3+4=7. Yes. The answer is \\boxed{7}."
GUESS = "Guess: 7. The answer is \\boxed{7}."
# Each problem's 4 OOD samples as (checked, correct). Base: half check and are right, half do not and are
# wrong. Suppressed arm: one check left (right). Damaged arm: two checks left, one of them wrong. Null: unchanged.
BASE = [(True, True), (True, True), (False, False), (False, False)]
SUPPRESSED = [(True, True), (False, False), (False, False), (False, False)]
DAMAGED = [(True, False), (True, True), (False, False), (False, False)]
ARMS = {"toy_s0": SUPPRESSED, "toy_s1": DAMAGED, "toy_null_s0": BASE, "toy_null_s1": BASE}
# Per model, (base, arm) accuracy with checking forced on (per problem) and in domain.
FORCED_ON = {"toy_s0": (0.9, 0.9), "toy_s1": (0.9, 0.5), "toy_null_s0": (0.5, 0.5), "toy_null_s1": (0.5, 0.5)}
# ... and with checking forced off: the damaged draw's guesses got better.
FORCED_OFF = {"toy_s0": (0.1, 0.1), "toy_s1": (0.1, 0.3), "toy_null_s0": (0.5, 0.5), "toy_null_s1": (0.5, 0.5)}


def draw_inputs():
    """The OOD samples of four draws' bases and arms (as the statistics rule reads them: checked_samples
    with the grid axes) and the per-problem table of every eval set."""
    from test_organism import ORGANISM

    samples, problems = [], []
    for model in ORGANISM_DRAWS:
        base = {"model": model, "method": "base", "richness": None, "ablation": "standard", "coverage": None}
        arm = {**base, **draws.ARM, "coverage": 64}
        cells = [(base, BASE, None), (arm, ARMS[model], 0), (arm, ARMS[model], 1)]
        if model == "toy_s0":  # the uncertainty ablation in one draw: preserve keeps the base's checks
            cells.append(({**arm, **draws.PRESERVE}, BASE, 0))
        for cell, outcomes, seed in cells:
            evals = pd.DataFrame(
                [
                    {"problem_id": f"p{i}", "response": CHECKS if checked else GUESS, "correct": correct}
                    for i in range(8)
                    for checked, correct in outcomes
                ]
            )
            axes = {**cell, "seed": seed}
            samples.append(draws.checked_samples(evals).assign(**axes, eval_set=ORGANISM.ood))
            accuracy = evals.groupby("problem_id", as_index=False)["correct"].mean()
            on, off = FORCED_ON[model][cell is not base], FORCED_OFF[model][cell is not base]
            for eval_set, value in (
                (ORGANISM.ood, accuracy["correct"]),
                (ORGANISM.ood_on, on),
                (ORGANISM.ood_off, off),
                (ORGANISM.in_domain, 0.95),
            ):
                problems.append(
                    accuracy[["problem_id"]].assign(**axes, eval_set=eval_set, accuracy=value, epistemic_count=1.0)
                )
    return ORGANISM, pd.concat(samples, ignore_index=True), pd.concat(problems, ignore_index=True)


def draw_outputs():
    from selfdistill.organism import organism_effects

    organism, samples, problems = draw_inputs()
    worlds = {m: d["world"] for m, d in ORGANISM_DRAWS.items()}
    effects = organism_effects(problems, worlds, organism, PAIRS, STRATA)
    return effects, samples, draws.draw_table(effects, ORGANISM_DRAWS, samples, STRATA, PAIRS)


def test_draw_table_carries_each_draws_verdict_and_hand_computed_decomposition():
    effects, _, table = draw_outputs()
    table = table.set_index("model")
    assert list(table.index) == list(ORGANISM_DRAWS) and (table["coverage"] == 64).all()
    assert table["verdict"].to_dict() == {
        "toy_s0": "suppression",
        "toy_s1": "damage",
        "toy_null_s0": "none",
        "toy_null_s1": "none",
    }
    # By hand, every stratum alike. Suppressed: r 0.5 -> 0.25, a_c 1 -> 1, a_n 0 -> 0: (a) -0.25 x 1, (b) 0, (c) 0.
    # Damaged: r 0.5 -> 0.5, a_c 1 -> 0.5: (a) 0, (b) 0.5 x -0.5 = -0.25, (c) 0. Null: nothing moves.
    expected = {
        "toy_s0": (-0.25, 0.0, 0.0, -0.25, 1.0),
        "toy_s1": (0.0, -0.25, 0.0, -0.25, 0.0),
        "toy_null_s0": (0.0, 0.0, 0.0, 0.0, np.nan),
    }
    for model, values in expected.items():
        got = table.loc[model, [*draws.TERMS, "total", "rate_share"]].to_numpy(float)
        np.testing.assert_allclose(got, values, atol=1e-12)
    assert table.loc["toy_s1", ["rate_base", "rate_arm", "acc_check_base", "acc_check_arm"]].tolist() == [
        0.5,
        0.5,
        1.0,
        0.5,
    ]
    # effects: OOD -0.25 (as the organism table), forced on 0 / -0.4, recovery = forced-on effect minus free effect
    assert table["ood_effect"].tolist() == pytest.approx([-0.25, -0.25, 0.0, 0.0])
    assert table["recovery_effect"].tolist() == pytest.approx([0.25, -0.15, 0.0, 0.0])
    assert table["ood_off_effect"].tolist() == pytest.approx([0.0, 0.2, 0.0, 0.0])
    assert table.loc["toy_s0", "between_world_effect"] == pytest.approx(-0.25)
    assert (
        np.isnan(table.loc["toy_null_s0", "between_world_effect"])
        and table.loc["toy_s1", "null_partner"] == "toy_null_s1"
    )
    assert table["pretraining_seed"].tolist() == [0, 1, 0, 1]


def test_draw_table_refuses_samples_that_are_not_the_effects():
    """Negative control: the decomposition must split the headline's OOD change; samples other than
    those the effect was computed from (one arm's problem regraded) would split another number."""
    effects, samples, _ = draw_outputs()
    regraded = samples.copy()
    arm = (regraded["model"] == "toy_s1") & (regraded["method"] != "base") & (regraded["problem_id"] == "p0")
    regraded.loc[arm, "correct"] = True
    with pytest.raises(ValueError, match="toy_s1.*not the arm's OOD effect"):
        draws.draw_table(effects, ORGANISM_DRAWS, regraded, STRATA, PAIRS)


def test_a_decomposition_missing_a_term_is_refused():
    parts = draws.decompose(*samples(6, 5, 4, 1), *samples(3, 1, 7, 2))
    draws.check_decomposition(parts, "hand case")
    with pytest.raises(ValueError, match="hand case: the terms"):
        draws.check_decomposition({**parts, "nocheck_accuracy_term": 0.0}, "hand case")


def test_a_draws_table_that_pools_two_worlds_or_counts_a_draw_twice_is_refused():
    _, _, table = draw_outputs()
    draws.check_designs(table)
    pooled = table.assign(design="toy_s0")
    with pytest.raises(ValueError, match="design toy_s0 pools draws of worlds guess_check, null"):
        draws.check_designs(pooled)
    with pytest.raises(ValueError, match="pools"):
        draws.primary_tests(pooled)
    with pytest.raises(ValueError, match="pools"):
        draws.render_draws(pooled)
    twice = pd.concat([table, table.iloc[[0]]], ignore_index=True)
    with pytest.raises(ValueError, match=r"counts draws \(pretraining seed, micro-batch\) \[\[0, 16\]\] twice"):
        draws.check_designs(twice)
    draws.check_designs(twice.assign(micro_batch_size=[16] * len(table) + [8]))  # one seed, another split: a draw


def test_primary_tests_by_hand():
    # Two draws: between-world differences -0.25, -0.25: one-sided sign-flip p = 1/4 (1 of 4 patterns).
    # Rate share: (a) -0.25, 0 of totals -0.25, -0.25: estimate 0.125 / 0.25 = 0.5; (a) - total / 2 =
    # -0.125, +0.125: mean 0, 3 of 4 patterns <= 0. Holm: 0.25 x 2 = 0.5, max(0.5, 0.75) = 0.75.
    _, _, table = draw_outputs()
    tests = draws.primary_tests(table).set_index("test")
    assert tests.loc["between worlds", ["estimate", "p_value", "min_p", "p_holm"]].tolist() == pytest.approx(
        [-0.25, 0.25, 0.25, 0.5]
    )
    assert tests.loc["rate share", ["estimate", "p_value", "p_holm"]].tolist() == pytest.approx([0.5, 0.75, 0.75])
    assert (tests["n_draws"] == 2).all() and tests["verdict"].str.startswith("inconclusive (too few draws").all()
    # Six draws, all in the predicted direction: p = 1/64 each, Holm 2/64 < 0.05: supported.
    six = pd.DataFrame(
        {
            "design": "toy_s0",
            "world": "guess_check",
            "pretraining_seed": range(6),
            "micro_batch_size": 16,
            "coverage": 64,
            "between_world_effect": [-0.1, -0.2, -0.3, -0.05, -0.15, -0.25],
            "rate_term": [-0.2, -0.25, -0.15, -0.2, -0.3, -0.1],
            "total": [-0.3, -0.3, -0.25, -0.3, -0.4, -0.15],
        }
    )
    tests = draws.primary_tests(six).set_index("test")
    assert tests["p_value"].tolist() == pytest.approx([1 / 64, 1 / 64]) and tests["p_holm"].tolist() == pytest.approx(
        [2 / 64] * 2
    )
    assert tests.loc["rate share", "estimate"] == pytest.approx(1.2 / 1.7) and (tests["verdict"] == "supported").all()
    # A draw where (a) carries less than half (-0.1 of -0.3) turns the share's sign pattern: not all below.
    mixed = six.assign(rate_term=[-0.1, -0.25, -0.15, -0.2, -0.3, -0.1])
    assert draws.primary_tests(mixed).set_index("test").loc["rate share", "p_value"] > 1 / 64
    # No drop: nothing to split, not tested; the between-world test stays a family of one.
    rising = draws.primary_tests(six.assign(total=0.1)).set_index("test")
    assert (
        np.isnan(rising.loc["rate share", "p_value"])
        and rising.loc["rate share", "verdict"] == "not tested (no OOD drop to split)"
    )
    assert rising.loc["between worlds", "p_holm"] == pytest.approx(1 / 64)


def test_the_section_renders_per_draw_verdicts_fractions_decomposition_and_tests():
    _, _, table = draw_outputs()
    page = "\n".join(draws.render_draws(table, draws.primary_tests(table)))
    assert page.startswith("## Across pretrained draws")
    row = "| guess_check | toy_s1 | 1 / 16 | 64 | -0.250 [-0.250, -0.250] | -0.400 [-0.400, -0.400] | +0.200 [+0.200"
    assert row in page
    assert "**damage** |" in page and page.count("**none** |") == 2
    # 1 of 2 draws: Clopper-Pearson [0.0126, 0.9874]; 2 of 2: [0.1581, 1]
    assert "| guess_check (toy_s0) | 64 | 1/2 [0.01, 0.99] | 1/2 [0.01, 0.99] | 0/2 [0.00, 0.84] |" in page
    assert "| null (toy_null_s0) | 64 | 0/2 [0.00, 0.84] | 0/2 [0.00, 0.84] | 2/2 [0.16, 1.00] |" in page
    decomposed = "| 0.500 → 0.250 | 1.000 → 1.000 | 0.000 → 0.000 | -0.250 | +0.000 | +0.000 | -0.250 | 1.00 |"
    assert f"| guess_check | toy_s0 | 64 {decomposed}" in page
    assert "| between worlds | toy_s0 | 64 | 2 | -0.250 [n/a, n/a] | 0.25 | 0.25 | 0.5 | **inconclusive" in page
    assert "| rate share | toy_s0 | 64 | 2 | +0.500 [n/a, n/a] | 0.75 | 0.25 | 0.75 |" in page
    # Claim (d): preserve kept the base's OOD accuracy (0) where standard lost 0.25; one draw has the arm.
    assert "| guess_check | toy_s0 | 64 | +0.000 | -0.250 | +0.250 |" in page
    assert "OOD accuracy kept under `preserve` (effect ≥ −0.05): guess_check (toy_s0, coverage 64): 1/1 draws." in page
    assert draws.render_draws(pd.DataFrame()) == [draws.ONE_DRAW, ""]
    assert "config/draws.yaml" in draws.ONE_DRAW
