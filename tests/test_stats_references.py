"""The statistics and the organism's effects against hand-computed cases and exact references (exact
permutation p-values, normal-approximation interval widths); each kills mutants the rest of the suite
let survive (docs/mutation.md)."""

import math

import numpy as np
import pandas as pd
import pytest

from selfdistill.stats import bootstrap_ci, hierarchical_ci, holm, independent_difference, paired_difference


def _normal_width(values, level=0.95):
    """Width of the normal-approximation CI of a mean: the bootstrap's should be close for n = 400."""
    z = {0.95: 1.959964, 0.8: 1.281552}[level]
    return 2 * z * np.std(values, ddof=1) / math.sqrt(len(values))


@pytest.mark.parametrize("level", [0.95, 0.8])
def test_bootstrap_intervals_have_the_normal_width_at_their_level(level):
    """400 uniform values: the percentile bootstrap CI (problems) and the hierarchical one (1 seed x
    400 problems) are centred on the mean with the normal width at that level, within 10%."""
    values = np.random.default_rng(11).random(400)
    for low, high in (bootstrap_ci(values, level=level), hierarchical_ci(values[None], level=level)):
        assert low < values.mean() < high
        assert abs((low + high) / 2 - values.mean()) < 0.1 * (high - low)
        assert (high - low) == pytest.approx(_normal_width(values, level), rel=0.1)


def test_bootstrap_ci_of_two_values_and_of_a_constant():
    """Two problems already give an interval (inside their range); a constant gives the constant."""
    low, high = bootstrap_ci(np.array([0.0, 1.0]))
    assert 0.0 <= low < high <= 1.0
    assert bootstrap_ci(np.array([0.3, 0.3, 0.3])) == (0.3, 0.3)
    assert all(np.isnan(bootstrap_ci(np.array([0.3]))))


def test_hierarchical_ci_resamples_seeds_then_problems_by_hand():
    """Two seeds, one all 0 and one all 1: a resample's mean is the share of seed-1 draws, 0, 1/2 or 1
    with probabilities 1/4, 1/2, 1/4, so the 95% interval is [0, 1]; across problems of one seed, the
    same for two problems 0 and 1. Seeded: the same interval twice; another seed, the same here."""
    seeds = np.array([[0.0] * 5, [1.0] * 5])
    assert hierarchical_ci(seeds) == (0.0, 1.0)
    assert hierarchical_ci(np.array([[0.0, 1.0]])) == (0.0, 1.0)
    values = np.random.default_rng(12).random((3, 30))
    assert hierarchical_ci(values, seed=5) == hierarchical_ci(values, seed=5)
    assert hierarchical_ci(values, seed=5) != hierarchical_ci(values, seed=6)


def test_paired_difference_sign_flip_p_is_exact_for_five_problems():
    """Differences 1..5: of the 2^5 sign patterns only all-plus and all-minus reach |mean| 3, so the
    two-sided p is 2/32; effect 3; the smallest attainable p 2^(1-5)."""
    a = pd.Series([2.0, 3.0, 4.0, 5.0, 6.0], index=list("abcde"))
    b = pd.Series([1.0, 1.0, 1.0, 1.0, 1.0], index=list("abcde"))
    result = paired_difference(a, b)
    assert result["effect"] == 3.0 and result["n_problems"] == 5
    assert result["p_value"] == pytest.approx(2 / 32) and result["min_p"] == pytest.approx(1 / 16)
    assert 1.0 <= result["ci_low"] < 3.0 < result["ci_high"] <= 5.0
    # Differences 1, 1, 1, -1, 1, 1 (mean 2/3): patterns with |mean| >= 2/3 have at most one sign
    # unlike the others' majority: 2 x (1 + 6) = 14 of 64.
    c = pd.Series([1.0, 1, 1, -1, 1, 1], index=list("abcdef"))
    assert paired_difference(c, c * 0)["p_value"] == pytest.approx(14 / 64)


def test_paired_difference_of_one_problem_or_only_residue():
    one = paired_difference(pd.Series([0.5], index=["a"]), pd.Series([0.2], index=["a"]))
    assert one["effect"] == pytest.approx(0.3) and one["min_p"] == 1.0 and np.isnan(one["p_value"])
    none = paired_difference(pd.Series([], dtype=float), pd.Series([], dtype=float))
    assert none["n_problems"] == 0 and np.isnan(none["effect"]) and np.isnan(none["min_p"])
    tiny = paired_difference(pd.Series([1e-13, 5e-13], index=["a", "b"]), pd.Series([0.0, 0.0], index=["a", "b"]))
    assert tiny["effect"] == 0.0 and tiny["p_value"] == 1.0 and tiny["min_p"] == 0.5


def test_independent_difference_exact_permutation_p_by_hand():
    """[3, 4] vs [1, 2]: of the 6 relabellings only the observed split and its mirror reach |2|, p = 2/6;
    three against two: 10 relabellings, p = 2/10."""
    two = independent_difference([3.0, 4.0], [1.0, 2.0])
    assert two["effect"] == 2.0 and two["p_value"] == pytest.approx(1 / 3) and two["min_p"] == pytest.approx(1 / 3)
    three = independent_difference([5.0, 6.0, 7.0], [1.0, 2.0])
    assert three["effect"] == pytest.approx(4.5) and three["p_value"] == pytest.approx(0.2)
    assert three["min_p"] == pytest.approx(0.2) and 2.0 < three["ci_low"] < 4.5 < three["ci_high"] < 7.0
    lone = independent_difference([1.0], [2.0, 3.0])
    assert lone["effect"] == -1.5 and lone["min_p"] == pytest.approx(2 / 3) and np.isnan(lone["p_value"])
    assert np.isnan(independent_difference([], [1.0, 2.0])["min_p"])


def test_holm_by_hand():
    """Sorted p 0.01, 0.03, 0.04, 0.2 times 4, 3, 2, 1 is 0.04, 0.09, 0.08, 0.2; made monotone:
    0.04, 0.09, 0.09, 0.2; capped at 1; NaNs are not tests."""
    np.testing.assert_allclose(holm([0.04, 0.01, 0.2, 0.03]), [0.09, 0.04, 0.2, 0.09])
    np.testing.assert_allclose(holm([0.5, np.nan, 0.6]), [1.0, np.nan, 1.0])
    np.testing.assert_allclose(holm([0.02, np.nan, 0.01]), [0.02, np.nan, 0.02])


def _cell_rows(matrix, model="m"):
    """Per-problem rows of one grid cell: matrix[seed][problem] accuracy (None: not evaluated)."""
    rows = []
    for seed, values in enumerate(matrix):
        for i, value in enumerate(values):
            if value is not None:
                rows.append(
                    {
                        "model": model,
                        "method": "sft",
                        "richness": "solution",
                        "ablation": "standard",
                        "coverage": 8,
                        "eval_set": "ood",
                        "seed": seed,
                        "problem_id": f"p{i}",
                        "accuracy": value,
                        "mean_tokens": 100 * value,
                        "epistemic_count": 2.0,
                        "epistemic_density": 10 * value,
                    }
                )
    return rows


def test_cell_estimates_by_hand_with_three_seeds_and_a_problem_one_seed_missed():
    """Seeds [.1 .2 .3 .4], [.2 .3 .4 .5], [.3 .4 .5 -]: p3 is dropped (not every seed evaluated it),
    mean 0.3, sd of the seed means [.2 .3 .4] 0.1, the hierarchical CI of the 3 x 3 matrix."""
    from selfdistill.stats import cell_estimates

    matrix = [[0.1, 0.2, 0.3, 0.4], [0.2, 0.3, 0.4, 0.5], [0.3, 0.4, 0.5, None]]
    row = cell_estimates(pd.DataFrame(_cell_rows(matrix))).iloc[0]
    assert row["n_seeds"] == 3 and row["n_problems"] == 4
    assert row["accuracy"] == pytest.approx(0.3) and row["accuracy_sd_seeds"] == pytest.approx(0.1)
    assert row["mean_tokens"] == pytest.approx(30.0) and row["epistemic_density"] == pytest.approx(3.0)
    full = np.array([[0.1, 0.2, 0.3], [0.2, 0.3, 0.4], [0.3, 0.4, 0.5]])
    assert (row["accuracy_ci_low"], row["accuracy_ci_high"]) == pytest.approx(hierarchical_ci(full))
    assert (row["mean_tokens_ci_low"], row["mean_tokens_ci_high"]) == pytest.approx(hierarchical_ci(100 * full))


def test_cell_estimates_of_one_seed_bootstrap_the_problems():
    from selfdistill.stats import cell_estimates

    values = [0.0, 0.5, 1.0, 0.25, 0.75]
    base = [
        {**r, "method": "base", "richness": None, "ablation": None, "coverage": None} for r in _cell_rows([[0.2, 0.2]])
    ]
    rows = _cell_rows([values]) + [{**r, "model": "other"} for r in base]
    cells = cell_estimates(pd.DataFrame(rows)).set_index("model")
    row = cells.loc["m"]
    assert row["n_seeds"] == 1 and row["n_problems"] == 5 and row["accuracy"] == pytest.approx(0.5)
    assert np.isnan(row["accuracy_sd_seeds"])
    assert (row["accuracy_ci_low"], row["accuracy_ci_high"]) == pytest.approx(bootstrap_ci(np.array(values)))
    assert cells.loc["other", "accuracy"] == pytest.approx(0.2)  # the base model's cell: keys without a value


def test_per_problem_averages_each_problems_samples():
    from selfdistill.stats import per_problem

    samples = pd.DataFrame(
        {
            "problem_id": ["b", "a", "b", "a", "b"],
            "correct": [True, False, False, False, True],
            "n_tokens": [10, 20, 30, 40, 50],
            "epistemic_count": [0, 1, 2, 3, 4],
            "epistemic_density": [0.0, 50.0, 66.0, 75.0, 80.0],
        }
    )
    table = per_problem(samples).set_index("problem_id")
    assert list(table.index) == ["a", "b"]
    assert table["accuracy"].tolist() == pytest.approx([0.0, 2 / 3])
    assert table["mean_tokens"].tolist() == pytest.approx([30.0, 30.0])
    assert table["epistemic_count"].tolist() == pytest.approx([2.0, 2.0])
    assert table["epistemic_density"].tolist() == pytest.approx([62.5, 146 / 3])


def _arm_rows(method, richness, ablation, accuracy, eval_set="ood", coverage=8, seeds=(0, 1)):
    return [
        {
            "model": "m",
            "method": method,
            "richness": richness,
            "ablation": ablation,
            "coverage": coverage,
            "eval_set": eval_set,
            "seed": seed,
            "problem_id": f"p{i}",
            "accuracy": accuracy + 0.01 * i,
        }
        for seed in seeds
        for i in range(10)
    ]


def test_standard_comparisons_by_hand():
    """Base 0.5, sft/none 0.6, sft/solution 0.3, sft/solution/preserve 0.45 (+0.01 x problem index in
    each): vs base +0.1, -0.2, -0.05; context vs none -0.3; preserve vs standard +0.15; no preserve
    arm without context, so no such row. Ten equal differences: exact sign-flip p 2/1024, Holm x 5.
    On a subset eval set the base model is compared on the same coverage's subsets."""
    from selfdistill.stats import standard_comparisons

    rows = (
        _arm_rows("base", None, None, 0.5, coverage=np.nan, seeds=(np.nan,))
        + _arm_rows("sft", "none", "standard", 0.6)
        + _arm_rows("sft", "solution", "standard", 0.3)
        + _arm_rows("sft", "solution", "preserve", 0.45)
        + _arm_rows("base", None, None, 0.1, eval_set="sub", coverage=8, seeds=(np.nan,))
        + _arm_rows("base", None, None, 0.9, eval_set="sub", coverage=16, seeds=(np.nan,))
        + _arm_rows("sft", "none", "standard", 0.2, eval_set="sub")
    )
    table = standard_comparisons(pd.DataFrame(rows))
    got = {
        (r.eval_set, r.richness, r.ablation, r.comparison, r.against): round(r.effect, 10) for r in table.itertuples()
    }
    assert got == {
        ("ood", "none", "standard", "vs base", "base"): 0.1,
        ("ood", "solution", "standard", "vs base", "base"): -0.2,
        ("ood", "solution", "standard", "context vs none", "richness none"): -0.3,
        ("ood", "solution", "preserve", "vs base", "base"): -0.05,
        ("ood", "solution", "preserve", "ablation vs standard", "ablation standard"): 0.15,
        ("sub", "none", "standard", "vs base", "base"): 0.1,
    }
    assert (table["n_problems"] == 10).all()
    np.testing.assert_allclose(table["p_value"], 2 / 1024)
    np.testing.assert_allclose(table["p_holm"], 6 * 2 / 1024)


# ---- the organism's gate and effects ------------------------------------------------------------


def _organism_config(**overrides):
    from dataclasses import replace

    from test_organism import ORGANISM

    return replace(ORGANISM, **overrides)


def _samples(correct, wrong_guesses=0, wait_wrong=(), wait_right=()):
    """10 problems p0..p9 (answer 1): the first `correct` samples right; guesses wrong (2) for the
    first `wrong_guesses`, right after; Wait in the samples listed; None: no guess at all."""
    responses = []
    for i in range(10):
        if wrong_guesses is None:
            responses.append("no guess")
            continue
        guess = "2" if i < wrong_guesses else "1"
        responses.append(f"Guess: {guess}. " + ("Wait, no." if i in wait_wrong or i in wait_right else "Yes."))
    return pd.DataFrame(
        {"problem_id": [f"p{i}" for i in range(10)], "correct": np.arange(10) < correct, "response": responses}
    )


def test_gate_measurements_by_hand():
    """OOD 3/10 off, 8/10 on; in domain 9/10 off, 10/10 on. OOD: 4 wrong guesses, Wait after 3 of them
    and after 1 of 6 right ones; in domain: 2 wrong, Wait after 1, and after 2 of 8 right ones."""
    from selfdistill.organism import gate

    evals = {
        "ood_off": _samples(3, None),
        "ood_on": _samples(8, 4, wait_wrong={0, 1, 2}, wait_right={4}),
        "in_domain_off": _samples(9, None),
        "in_domain_on": _samples(10, 2, wait_wrong={0}, wait_right={2, 3}),
    }
    answers = pd.Series("1", index=[f"p{i}" for i in range(10)])
    result = gate("guess_check", evals, answers, _organism_config())
    expected = {
        "world": "guess_check",
        "ood_off": 0.3,
        "ood_on": 0.8,
        "ood_value": 0.5,
        "in_domain_off": 0.9,
        "in_domain_on": 1.0,
        "in_domain_value": 0.1,
        "wait_after_wrong_guess": 0.75,
        "wait_after_right_guess": 1 / 6,
        "wait_selectivity": 0.75 - 1 / 6,
        "n_wrong_guesses": 4,
        "wait_after_wrong_guess_in_domain": 0.5,
        "wait_after_right_guess_in_domain": 0.25,
        "n_wrong_guesses_in_domain": 2,
        "passed": False,
        "failures": ["checking is worth +0.100 in domain (organism.max_in_domain_value = 0.05)"],
    }
    assert result.keys() == expected.keys()
    for key, value in expected.items():
        assert result[key] == (pytest.approx(value) if isinstance(value, float) else value), key
    # At the bounds the gate passes: value >= min, in-domain value <= max, selectivity >= min.
    # (the bounds computed as the gate computes the values, so they are equal to the last bit)
    at_bounds = _organism_config(
        min_ood_value=0.8 - 0.3, max_in_domain_value=1.0 - 0.9, min_wait_selectivity=0.75 - 1 / 6
    )
    assert gate("guess_check", evals, answers, at_bounds)["failures"] == []
    messages = gate("guess_check", evals, answers, _organism_config(min_ood_value=0.6, min_wait_selectivity=0.6))
    assert messages["failures"] == [
        "checking is worth +0.500 OOD accuracy (organism.min_ood_value = 0.6)",
        "checking is worth +0.100 in domain (organism.max_in_domain_value = 0.05)",
        "Wait follows 0.75 of wrong guesses and 0.17 of right ones (organism.min_wait_selectivity = 0.6)",
    ]


def test_gate_without_guesses_to_compare_and_the_null_worlds_bound():
    from selfdistill.organism import gate

    evals = {
        "ood_off": _samples(3, None),
        "ood_on": _samples(4, None),
        "in_domain_off": _samples(9, None),
        "in_domain_on": _samples(9, None),
    }
    answers = pd.Series("1", index=[f"p{i}" for i in range(10)])
    result = gate("guess_check", evals, answers, _organism_config(min_ood_value=0.1))
    assert np.isnan(result["wait_selectivity"]) and result["n_wrong_guesses"] == 0
    assert result["failures"] == [
        "no wrong and right guesses to compare Wait after (0 wrong, 0 right parsed 'Guess: N.' in the forced-on "
        "OOD samples): the model does not follow its world's grammar"
    ]
    # A selectivity of -1 is required by nothing: no guesses then pass.
    assert gate("guess_check", evals, answers, _organism_config(min_ood_value=0.1, min_wait_selectivity=-1))["passed"]
    # The null world: |value| <= max_null_value passes; above it fails with the value.
    assert gate("null", evals, answers, _organism_config(max_null_value=0.4 - 0.3))["passed"]  # at the bound
    assert gate("null", evals, answers, _organism_config(max_null_value=0.09))["failures"] == [
        "checking is worth +0.100 OOD in the null world (organism.max_null_value = 0.09)"
    ]


def test_guess_outcomes_are_floats_with_nan_for_no_guess():
    from selfdistill.organism import guess_outcomes

    samples = pd.DataFrame(
        {"problem_id": ["a", "b", "c"], "response": ["Guess: 3. Wait, no.", "Guess: 4. Yes.", "no guess, Wait"]}
    )
    outcomes = guess_outcomes(samples, pd.Series({"a": "3", "b": "5", "c": "1"}))
    assert outcomes["guess_right"].dtype == np.float64 and outcomes["wait"].dtype == np.float64
    np.testing.assert_array_equal(outcomes["guess_right"], [1.0, 0.0, np.nan])
    np.testing.assert_array_equal(outcomes["wait"], [1.0, 0.0, 1.0])


def test_mechanism_fit_matches_ols_and_its_interval_the_standard_error():
    """40 runs of one point each: the coefficients are the OLS fit (numpy lstsq on the design built
    here), and the cluster bootstrap's 95% CI is about +-1.96 standard errors (within 25%)."""
    from selfdistill.stats import mechanism_fit

    rng = np.random.default_rng(13)
    n = 40
    d_epistemic = rng.uniform(-3, 1, n)
    d_accuracy = -0.02 + 0.05 * d_epistemic + rng.normal(0, 0.05, n)
    points = pd.DataFrame({"run": np.arange(n), "d_epistemic": d_epistemic, "d_accuracy": d_accuracy})
    table = mechanism_fit(points).set_index("term")
    design = np.column_stack([np.ones(n), d_epistemic])
    coef, residual, *_ = np.linalg.lstsq(design, d_accuracy, rcond=None)
    assert list(table.index) == ["intercept", "slope"]
    np.testing.assert_allclose(table["coefficient"], coef, rtol=1e-10)
    se = np.sqrt(residual[0] / (n - 2) * np.diag(np.linalg.inv(design.T @ design)))
    np.testing.assert_allclose(table["ci_high"] - table["ci_low"], 2 * 1.96 * se, rtol=0.25)
    np.testing.assert_allclose((table["ci_high"] + table["ci_low"]) / 2, coef, atol=0.5 * se.max())
    assert (table["n_points"] == n).all() and (table["n_runs"] == n).all()
    pd.testing.assert_frame_equal(table, mechanism_fit(points, seed=0).set_index("term"))  # seed 0 unless given


def test_mechanism_fit_gives_no_interval_with_fewer_than_three_runs():
    from selfdistill.stats import mechanism_fit

    points = pd.DataFrame(
        {"run": np.repeat(np.arange(2), 3), "d_epistemic": np.arange(6.0) ** 1.5, "d_accuracy": np.linspace(0, 1, 6)}
    )
    few = mechanism_fit(points)
    assert few["ci_low"].isna().all() and few["ci_high"].isna().all()
    assert (few["n_runs"] == 2).all() and (few["n_points"] == 6).all()


def test_seed_effect_by_hand():
    """Three seeds' values minus the reference on problems a, b (c has no reference, d no value in
    seed 2): per-seed effects +0.1, +0.2, +0.3 on a and b; the CI is the hierarchical one of that
    matrix; the p is the sign-flip test of the seed-averaged differences."""
    from selfdistill.organism import seed_effect

    treated = pd.DataFrame(
        [
            {"seed": s, "problem_id": p, "value": v}
            for s, shift in enumerate((0.1, 0.2, 0.3))
            for p, v in (("a", 0.5 + shift), ("b", 0.6 + shift), ("c", 0.9), ("d", 0.1 + shift))
            if not (p == "d" and s == 2)
        ]
    )
    reference = pd.Series({"a": 0.5, "b": 0.6, "d": 0.1})
    result = seed_effect(treated, reference)
    diff = np.array([[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]])
    assert result["effect"] == pytest.approx(0.2) and result["n_problems"] == 2 and result["n_seeds"] == 3
    assert result["seed_sd"] == pytest.approx(0.1) and result["seed_effects"] == "+0.100, +0.200, +0.300"
    assert (result["ci_low"], result["ci_high"]) == pytest.approx(hierarchical_ci(diff))
    assert result["p_value"] == pytest.approx(0.5) and result["min_p"] == pytest.approx(0.5)  # 2 of 4 sign patterns


@pytest.mark.parametrize(
    "predicted, quantity, effect, low, high, p_holm, min_p, expected",
    [
        (-1, "ood", -0.2, -0.3, -0.1, 0.01, 0.0, "as predicted"),
        (-1, "ood", 0.2, 0.1, 0.3, 0.01, 0.0, "opposite to prediction"),
        (-1, "ood", 0.0, -0.04, 0.04, 0.5, 0.0, "not as predicted (no effect)"),
        (-1, "ood", -0.1, -0.2, 0.05, 0.2, 0.0, "inconclusive at this sample size"),
        (1, "recovery", 0.2, 0.1, 0.3, 0.01, 0.0, "as predicted"),
        (0, "ood", 0.0, -0.04, 0.04, 0.5, 0.0, "as predicted (no effect)"),
        (0, "ood", 0.2, 0.1, 0.3, 0.01, 0.0, "not as predicted (an effect)"),
        (0, "ood", -0.2, -0.3, -0.1, 0.01, 0.0, "not as predicted (an effect)"),
        (0, "epistemic", 0.1, -0.15, 0.15, 0.5, 0.0, "as predicted (no effect)"),  # margin 0.2 words
        (0, "ood", 0.1, -0.15, 0.15, 0.5, 0.0, "inconclusive at this sample size"),  # margin 0.05
        (-1, "ood", -0.2, -0.3, -0.1, 0.01, 0.25, "inconclusive (too few units: the smallest attainable p is 0.25)"),
        (0, "epistemic", 0.1, -0.3, 0.5, 0.5, 0.0, "inconclusive at this sample size"),  # beyond 0.2 words
        (0, "ood", 0.0, -0.01, 0.01, 1.0, 0.5, "inconclusive (too few units: the smallest attainable p is 0.5)"),
    ],
)
def test_verdicts_against_the_prediction(predicted, quantity, effect, low, high, p_holm, min_p, expected):
    from types import SimpleNamespace

    from selfdistill.organism import _against_prediction

    row = SimpleNamespace(
        predicted=predicted, quantity=quantity, effect=effect, ci_low=low, ci_high=high, p_holm=p_holm, min_p=min_p
    )
    assert _against_prediction(row) == expected


def test_base_arm_is_the_models_own_base_and_per_problem_mean():
    from selfdistill.stats import base_arm

    rows = _arm_rows("base", None, None, 0.5, coverage=np.nan, seeds=(np.nan,))
    rows += [{**r, "model": "other", "accuracy": 0.9} for r in rows]
    got = base_arm(pd.DataFrame(rows), "m", "ood", 8)
    np.testing.assert_allclose(got.to_numpy(), 0.5 + 0.01 * np.arange(10))


def test_trace_selection_without_kept_traces_selects_nothing():
    from selfdistill.train.sft import select_traces

    teacher = pd.DataFrame(
        {"problem_id": ["a"], "sample": [0], "epistemic_count": [1], "n_tokens": [5], "kept": [False]}
    )
    unguided = pd.DataFrame({"problem_id": ["a"], "epistemic_count": [1], "n_tokens": [5], "correct": [True]})
    selected, report = select_traces(teacher, unguided, "preserve", per_problem=1)
    assert selected.empty and list(selected.columns) == list(teacher.columns) and report.empty


@pytest.mark.parametrize(
    "effect, low, high, p_adj, direction, min_p, expected",
    [
        # A CI that touches 0 excludes nothing, on either side and in either direction.
        (0.1, 0.0, 0.2, 0.01, +1, 0.0, "inconclusive at this sample size"),
        (-0.1, -0.2, 0.0, 0.01, +1, 0.0, "inconclusive at this sample size"),
        # A CI across 0 is in neither direction however small its p.
        (0.05, -0.2, 0.3, 0.01, +1, 0.0, "inconclusive at this sample size"),
        (0.05, -0.2, 0.3, 0.01, -1, 0.0, "inconclusive at this sample size"),
        (-0.1, -0.3, 0.0, 0.01, -1, 0.0, "inconclusive at this sample size"),  # a lower claim, CI up to 0
        (0.1, 0.0, 0.2, 0.01, -1, 0.0, "inconclusive at this sample size"),  # the opposite side, from 0
        # The margin and the size of the test are inclusive bounds of what they allow.
        (0.0, -0.05, 0.04, 0.5, +1, 0.0, "not supported (no effect: CI within ±0.05)"),
        (0.0, -0.04, 0.05, 0.5, +1, 0.0, "not supported (no effect: CI within ±0.05)"),
        (0.1, 0.06, 0.15, 0.05, +1, 0.0, "inconclusive at this sample size"),  # p = 0.05 is not < 0.05
        (0.1, 0.06, 0.15, 0.01, +1, 0.05, "inconclusive (too few units: the smallest attainable p is 0.05)"),
        (np.nan, np.nan, np.nan, 0.01, +1, 0.0, "inconclusive (too few problems for an interval)"),
    ],
)
def test_verdict_at_its_boundaries(effect, low, high, p_adj, direction, min_p, expected):
    from selfdistill.stats import verdict

    assert verdict(effect, low, high, p_adj, direction, 0.05, min_p) == expected


def test_independent_difference_is_scipys_percentile_bootstrap_and_reproducible():
    """The CI is scipy's percentile bootstrap of the difference of means, each group resampled on its own,
    N_RESAMPLES draws from seed 0, at the level asked; 8 vs 8 (12,870 relabellings) is past the exact
    permutation test, so its p is sampled too: two calls agree to the last digit."""
    from scipy import stats

    from selfdistill.stats import N_RESAMPLES

    rng = np.random.default_rng(5)
    x, y = rng.normal(1.0, 1.0, 8), rng.normal(0.0, 2.0, 8)
    difference = lambda a, b, axis=-1: np.mean(a, axis=axis) - np.mean(b, axis=axis)  # noqa: E731
    for level in (0.95, 0.8):
        ci = stats.bootstrap(
            (x, y), difference, n_resamples=N_RESAMPLES, confidence_level=level, method="percentile", random_state=0
        ).confidence_interval
        result = independent_difference(x, y, level=level)
        assert (result["ci_low"], result["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert independent_difference(x, y) == independent_difference(x, y)
    lone = independent_difference([1.0], [2.0, 3.0])
    assert all(np.isnan(lone[k]) for k in ("ci_low", "ci_high", "p_value"))


def _base_cell_rows(values, model="m"):
    """A base model's cell: no training seed (None), as the workflow's paths give it."""
    return [
        {**r, "method": "base", "richness": None, "ablation": None, "coverage": None, "seed": None}
        for r in _cell_rows([values], model)
    ]


def test_cell_estimates_of_a_base_model_without_a_seed_and_of_two_seeds():
    """A base cell (seed None) is one seed of its problems; two seeds give the seeds' sd and bootstrap the
    problems of the seed means (resampling seeds needs three)."""
    from selfdistill.stats import cell_estimates

    base = cell_estimates(pd.DataFrame(_base_cell_rows([0.2, 0.4, 0.9]))).iloc[0]
    assert base["n_seeds"] == 1 and base["accuracy"] == pytest.approx(0.5) and np.isnan(base["accuracy_sd_seeds"])
    assert (base["accuracy_ci_low"], base["accuracy_ci_high"]) == pytest.approx(bootstrap_ci(np.array([0.2, 0.4, 0.9])))
    matrix = np.random.default_rng(3).random((2, 30))
    two = cell_estimates(pd.DataFrame(_cell_rows(matrix.tolist()))).iloc[0]
    assert two["n_seeds"] == 2 and two["accuracy_sd_seeds"] == pytest.approx(np.std(matrix.mean(1), ddof=1))
    by_id = matrix.mean(0)[np.argsort([f"p{i}" for i in range(30)])]  # the pivot's column order
    assert (two["accuracy_ci_low"], two["accuracy_ci_high"]) == pytest.approx(bootstrap_ci(by_id))


def test_mechanism_fit_of_three_runs_of_one_named_model():
    """Three runs are enough for an interval; a `model` column naming one model is no pooling; the range of
    the hedging change is reported; the interval columns are floats (NaN, not None, without one)."""
    from selfdistill.stats import mechanism_fit

    points = pd.DataFrame(
        {
            "model": "m",
            "run": np.repeat(np.arange(3), 2),
            "d_epistemic": [-2.0, -1.5, -1.0, 0.5, 0.0, -0.2],
            "d_accuracy": [-0.3, -0.2, -0.1, 0.05, 0.0, 0.02],
        }
    )
    fit = mechanism_fit(points)
    assert fit["ci_low"].notna().all() and (fit["ci_low"] <= fit["coefficient"]).all()
    pd.testing.assert_frame_equal(fit, mechanism_fit(points, seed=0))  # seed 0 unless given
    assert (fit["d_epistemic_min"] == -2.0).all() and (fit["d_epistemic_max"] == 0.5).all()
    few = mechanism_fit(points[points["run"] < 2])
    assert few["ci_low"].dtype == float and few["ci_high"].dtype == float


def test_intervals_and_p_values_are_scipys_with_the_documented_settings():
    """20 problems' differences: the CI is scipy's percentile bootstrap of the mean (N_RESAMPLES draws, seed 0
    unless given, at the level asked), the p its sign-flip permutation test (2^20 sign patterns > 9,999,
    so sampled, from the same seed); the hierarchical CI's default seed is 0 as well."""
    from scipy import stats

    from selfdistill.stats import N_RESAMPLES

    d = np.random.default_rng(8).normal(0.05, 0.1, 20)
    for seed, level in ((0, 0.95), (3, 0.8)):
        ci = stats.bootstrap(
            (d,), np.mean, n_resamples=N_RESAMPLES, confidence_level=level, method="percentile", random_state=seed
        ).confidence_interval
        assert bootstrap_ci(d, seed, level) == pytest.approx((ci.low, ci.high), rel=1e-12)
    result = paired_difference(pd.Series(d), pd.Series(np.zeros(20)))
    p = stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=9999, random_state=0).pvalue
    assert result["p_value"] == pytest.approx(p, rel=1e-12) and 0.01 < p < 0.5  # a sampled p, not 0 or 1
    assert (result["ci_low"], result["ci_high"]) == pytest.approx(bootstrap_ci(d, 0), rel=1e-12)
    assert bootstrap_ci(d) == bootstrap_ci(d, 0)
    matrix = np.random.default_rng(9).random((3, 10))
    assert hierarchical_ci(matrix) == hierarchical_ci(matrix, seed=0)


def test_the_same_gain_on_every_problem_is_tested_not_taken_for_no_difference():
    """Every one of 5 problems gains exactly 1 (0 -> 1): only the observed and the all-flipped sign pattern
    reach |mean| 1, p = 2/32; no difference at all is p = 1."""
    gain = paired_difference(pd.Series(np.ones(5)), pd.Series(np.zeros(5)))
    assert gain["effect"] == 1.0 and gain["p_value"] == pytest.approx(2 / 32)
    assert paired_difference(pd.Series(np.ones(5)), pd.Series(np.ones(5)))["p_value"] == 1.0


def test_seed_effect_draws_its_intervals_and_p_from_the_seed_it_is_given():
    """20 problems: with three seeds the CI is the hierarchical one of the seeds x problems differences,
    with one seed the percentile bootstrap of the problems, and the p the sign-flip test of the seed
    means, all from the seed given (0 by default); two seeds have a spread."""
    from selfdistill.organism import seed_effect

    rng = np.random.default_rng(4)
    ids = [f"p{i:02d}" for i in range(20)]
    diff = rng.normal(0.05, 0.1, (3, 20))
    treated = pd.DataFrame(
        [{"seed": s, "problem_id": p, "value": 0.5 + diff[s, i]} for s in range(3) for i, p in enumerate(ids)]
    )
    reference = pd.Series(0.5, index=ids)
    three = seed_effect(treated, reference, seed=3)
    assert (three["ci_low"], three["ci_high"]) == pytest.approx(hierarchical_ci(diff, 3))
    assert three["p_value"] == pytest.approx(
        paired_difference(pd.Series(diff.mean(0)), pd.Series(0.0, range(20)), 3)["p_value"]
    )
    assert seed_effect(treated, reference) == seed_effect(treated, reference, seed=0)
    one = seed_effect(treated[treated["seed"] == 0], reference, seed=3)
    assert (one["ci_low"], one["ci_high"]) == pytest.approx(bootstrap_ci(diff[0], 3))
    two = seed_effect(treated[treated["seed"] < 2], reference)
    assert two["seed_sd"] == pytest.approx(np.std(diff[:2].mean(1), ddof=1))
