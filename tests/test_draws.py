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
