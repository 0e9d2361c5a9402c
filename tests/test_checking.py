"""Checking's rate and worth for any model (selfdistill.checking) against hand-computed cases."""

import numpy as np
import pandas as pd
import pytest

from selfdistill.checking import checking_sets, checking_table, rate_term_ci, verbalizes_checking
from selfdistill.draws import checked_samples

ARM = {"model": "m", "method": "onpolicy", "richness": "solution", "ablation": "standard", "coverage": 1, "seed": 0}
BASE = {"model": "m", "method": "base", "richness": None, "ablation": None, "coverage": None, "seed": None}
# Free samples, 4 problems x 4 samples: (checked, correct) per sample.
BASE_FREE = {
    "p0": ([1, 1, 0, 0], [1, 1, 0, 0]),
    "p1": ([1, 0, 0, 0], [1, 0, 1, 0]),
    "p2": ([1, 1, 1, 0], [1, 0, 1, 1]),
    "p3": ([0, 0, 0, 0], [0, 0, 0, 1]),
}
ARM_FREE = {
    "p0": ([1, 0, 0, 0], [1, 0, 0, 0]),
    "p1": ([0, 0, 0, 0], [0, 0, 1, 0]),
    "p2": ([1, 1, 0, 0], [1, 1, 0, 1]),
    "p3": ([0, 0, 0, 0], [0, 0, 0, 0]),
}
# Forced on (every sample checks) and banned (none does): correct samples per problem, of 4.
CORRECT = {"base_on": [4, 3, 3, 2], "base_off": [2, 1, 2, 1], "arm_on": [4, 2, 3, 1], "arm_off": [1, 1, 2, 0]}


def _rows(axes, eval_set, per_problem):
    return [
        {**axes, "eval_set": eval_set, "problem_id": pid, "checked": bool(c), "correct": bool(y)}
        for pid, (checked, correct) in per_problem.items()
        for c, y in zip(checked, correct, strict=True)
    ]


def _forced(counts, checked):
    return {f"p{i}": ([checked] * 4, [1] * k + [0] * (4 - k)) for i, k in enumerate(counts)}


def samples():
    rows = _rows(BASE, "ood", BASE_FREE) + _rows(ARM, "ood", ARM_FREE)
    for who, axes in (("base", BASE), ("arm", ARM)):
        rows += _rows(axes, "ood_checks_on", _forced(CORRECT[f"{who}_on"], 1))
        rows += _rows(axes, "ood_checks_off", _forced(CORRECT[f"{who}_off"], 0))
    return pd.DataFrame(rows)


def test_a_check_is_an_epistemic_word_at_the_start_of_a_word():
    responses = ["Guess: 7. Wait, 3+4=7.", "checking: fine", "Maybe 7.", "I await it.", "unlikely", "Guess: 7."]
    table = pd.DataFrame({"problem_id": range(6), "response": responses, "correct": [1, 0, 1, 0, 1, 0]})
    assert checked_samples(table, verbalizes_checking)["checked"].tolist() == [True, True, True, False, False, False]


def test_a_checking_set_needs_both_its_forced_and_its_banned_evaluation():
    assert checking_sets(["ood", "ood_checks_on", "ood_checks_off", "test", "test_checks_on", "aime"]) == ["ood"]


def test_the_decomposition_and_the_effects_of_a_hand_computed_case():
    (row,) = checking_table(samples()).to_dict("records")
    assert (row["model"], row["method"], row["eval_set"], row["n_problems"]) == ("m", "onpolicy", "ood", 4)
    # By hand: the base checks in 6 of 16 samples (5 of them right), not in 10 (3 right); the arm in 3 (3 right)
    # and not in 13 (2 right). Rate: (3/16 - 6/16)(5/6 - 3/10) = -1/10; when checking: 3/16 (1 - 5/6) = 1/32;
    # when not: 13/16 (2/13 - 3/10) = -19/160; together the change of accuracy, 5/16 - 8/16.
    assert row["rate_base"] == pytest.approx(6 / 16) and row["rate_arm"] == pytest.approx(3 / 16)
    assert row["rate_term"] == pytest.approx(-1 / 10)
    assert row["check_accuracy_term"] == pytest.approx(1 / 32)
    assert row["nocheck_accuracy_term"] == pytest.approx(-19 / 160)
    assert row["total"] == pytest.approx(-3 / 16) == row["free"]
    assert row["rate_share"] == pytest.approx((-1 / 10) / (-3 / 16))
    # Effects: the mean over problems of arm - base on each set, in samples of 4.
    assert row["on"] == pytest.approx(np.mean([0, -1, 0, -1]) / 4)
    assert row["off"] == pytest.approx(np.mean([-1, 0, 0, -1]) / 4)
    assert row["recovery"] == pytest.approx(row["on"] - row["free"]) and row["recovery"] == pytest.approx(1 / 16)
    assert row["value_base"] == pytest.approx(np.mean([2, 2, 1, 1]) / 4)  # base forced on - banned
    assert row["value_arm"] == pytest.approx(np.mean([3, 1, 1, 1]) / 4)
    assert (row["rate_on_arm"], row["rate_off_arm"], row["rate_on_base"], row["rate_off_base"]) == (1, 0, 1, 0)
    assert row["rate_term_ci_low"] <= row["rate_term"] <= row["rate_term_ci_high"]
    assert row["rate_term_ci_low"] < row["rate_term_ci_high"]


def test_an_arm_missing_one_of_the_six_evaluations_gets_no_row():
    table = samples()
    missing = (table["method"] == "onpolicy") & (table["eval_set"] == "ood_checks_off")
    assert checking_table(table[~missing]).empty
    assert len(checking_table(table)) == 1


def test_the_rate_terms_interval_resamples_problems_not_samples():
    """Problems with identical samples: resampling problems changes nothing, so the interval is the point
    (resampling samples within the pool would spread it); a base that always checks has no worth of a check."""
    base = pd.DataFrame(_rows(BASE, "ood", {f"p{i}": BASE_FREE["p2"] for i in range(8)}))
    arm = pd.DataFrame(_rows(ARM, "ood", {f"p{i}": ARM_FREE["p2"] for i in range(8)}))
    low, high = rate_term_ci(base, arm)
    # By hand: the base checks 3 of 4 (2 right), the arm 2 of 4; the base's lone non-check is right.
    assert low == pytest.approx(high) == pytest.approx((2 / 4 - 3 / 4) * (2 / 3 - 1))
    assert np.isnan(rate_term_ci(base.assign(checked=True), arm)).all()
