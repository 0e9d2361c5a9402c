import numpy as np
import pandas as pd
import pytest

from selfdistill.stats import (
    bootstrap_ci,
    cell_estimates,
    hierarchical_ci,
    holm,
    independent_difference,
    mechanism_fit,
    paired_difference,
    verdict,
)


def test_fixed_difference_gives_a_tight_ci_at_that_difference():
    a = pd.Series(np.linspace(0.2, 0.8, 40), index=[f"p{i}" for i in range(40)])
    result = paired_difference(a + 0.1, a)
    assert result["effect"] == pytest.approx(0.1)
    assert result["ci_low"] == pytest.approx(0.1) and result["ci_high"] == pytest.approx(0.1)
    assert result["p_value"] < 0.01


def test_identical_arms_give_p_of_one():
    a = pd.Series(np.random.default_rng(0).random(30), index=[f"p{i}" for i in range(30)])
    result = paired_difference(a, a.copy())
    assert result["effect"] == 0 and result["p_value"] == 1.0


def test_strong_effect_is_significant_and_noise_is_not():
    rng = np.random.default_rng(1)
    index = [f"p{i}" for i in range(60)]
    base = pd.Series(rng.random(60), index=index)
    strong = paired_difference(base + 0.3 + rng.normal(0, 0.1, 60), base)
    noise = paired_difference(base + rng.normal(0, 0.1, 60), base)
    assert strong["p_value"] < 0.01 and strong["ci_low"] > 0.2
    assert noise["p_value"] > 0.05 and noise["ci_low"] < 0 < noise["ci_high"]


def test_pairing_uses_shared_problems_only():
    a = pd.Series([1.0, 1.0, 0.0], index=["x", "y", "z"])
    b = pd.Series([0.0, 0.0], index=["x", "y"])
    assert paired_difference(a, b)["n_problems"] == 2


def test_bootstrap_is_deterministic_and_covers_the_mean():
    values = np.random.default_rng(2).random(50)
    assert bootstrap_ci(values) == bootstrap_ci(values)
    low, high = bootstrap_ci(values)
    assert low < values.mean() < high
    assert np.isnan(bootstrap_ci(values[:1])[0])


def test_hierarchical_ci_is_wider_when_seeds_disagree():
    rng = np.random.default_rng(3)
    agree = rng.random((1, 40)).repeat(4, 0)
    disagree = agree + np.array([[-0.2], [0.2], [-0.1], [0.1]])
    w_agree = np.diff(hierarchical_ci(agree))[0]
    w_disagree = np.diff(hierarchical_ci(disagree))[0]
    assert w_disagree > w_agree


def test_holm():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, np.nan]), [0.5, np.nan])


def test_cell_estimates_average_seeds_and_report_spread():
    rows = []
    for seed, shift in [(0, 0.0), (1, 0.2)]:
        for i in range(10):
            rows.append(
                {
                    "model": "m",
                    "method": "sft",
                    "richness": "none",
                    "ablation": "standard",
                    "coverage": 8,
                    "eval_set": "ood",
                    "seed": seed,
                    "problem_id": f"p{i}",
                    "accuracy": 0.4 + shift,
                    "mean_tokens": 50.0,
                    "epistemic_count": 1.0,
                    "epistemic_density": 20.0,
                }
            )
    cells = cell_estimates(pd.DataFrame(rows))
    assert len(cells) == 1
    row = cells.iloc[0]
    assert row["accuracy"] == pytest.approx(0.5) and row["n_seeds"] == 2 and row["n_problems"] == 10
    assert row["accuracy_sd_seeds"] == pytest.approx(np.std([0.4, 0.6], ddof=1))


def test_mechanism_fit_recovers_a_planted_slope_and_intercept_in_accuracy_units():
    """Changes from the base model: 0.2 OOD accuracy per epistemic word, -0.03 at unchanged hedging."""
    rng = np.random.default_rng(4)
    rows = []
    for run in range(12):
        for d_epistemic in rng.uniform(-1, 0, 4):  # its 4 checkpoints
            rows.append({"run": run, "d_epistemic": d_epistemic, "d_accuracy": -0.03 + 0.2 * d_epistemic})
            rows[-1]["d_accuracy"] += rng.normal(0, 0.01)
    table = mechanism_fit(pd.DataFrame(rows)).set_index("term")
    assert table.loc["slope", "coefficient"] == pytest.approx(0.2, abs=0.01)
    assert table.loc["intercept", "coefficient"] == pytest.approx(-0.03, abs=0.01)
    assert table.loc["slope", "ci_low"] > 0.15 and table.loc["intercept", "ci_high"] < 0
    assert table["n_runs"].eq(12).all() and table["n_points"].eq(48).all()
    few = mechanism_fit(pd.DataFrame(rows[:8]))  # two runs: no interval to give
    assert few["ci_low"].isna().all()


def test_full_coverage_in_paths_becomes_the_training_set_size():
    from selfdistill.grid import parse_path

    axes = parse_path("eval", "results/toy/eval/sft/solution/standard/cfull_s1/ood.parquet", full_coverage=256)
    assert (axes["coverage"], axes["seed"], axes["method"], axes["step"]) == (256, 1, "sft", None)
    assert parse_path("train", "results/toy/train/grpo/none/standard/c8_s0/log.parquet", 256)["coverage"] == 8
    assert parse_path("eval", "results/toy/eval/grpo/none/standard/c8_s0/step6/ood.parquet")["step"] == 6
    with pytest.raises(ValueError, match="coverage 'full' needs"):
        parse_path("eval", "results/toy/eval/sft/solution/standard/cfull_s1/ood.parquet")


def test_mechanism_fit_refuses_to_pool_models():
    points = pd.DataFrame(
        {
            "model": ["a", "a", "b", "b"],
            "run": [0, 1, 2, 3],
            "d_epistemic": [1.0, 2, 3, 4],
            "d_accuracy": [0.1, 0.2, 0.3, 0.4],
        }
    )
    with pytest.raises(ValueError, match="^mechanism_fit pools points of several models; fit each model on its own$"):
        mechanism_fit(points)


def test_two_groups_of_two_cannot_reach_significance_and_the_verdict_says_so():
    """Claim (c) compares runs (seeds) under two coverages: 2 vs 2 runs have 6 relabellings, so no
    test reaches p < 0.05 however separated the groups are; the verdict must not read the CI alone."""
    result = independent_difference([0.03, 0.05], [0.01, 0.02])
    assert result["min_p"] == pytest.approx(1 / 3) and result["p_value"] >= result["min_p"]
    assert result["ci_low"] > 0  # the bootstrap CI alone would call it an effect
    said = verdict(result["effect"], result["ci_low"], result["ci_high"], 0.0, +1, 0.02, result["min_p"])
    assert said.startswith("inconclusive (too few units")
    big = independent_difference(np.arange(8.0) + 10, np.arange(8.0))
    assert big["min_p"] < 1e-3 and big["p_value"] < 0.01 and big["ci_low"] > 5


def test_each_arm_is_resampled_on_its_own():
    """The CI of a difference of two independent means: its width follows each group's spread,
    not the n1 x n2 pairwise differences treated as independent draws (which is ~sqrt(n) too narrow)."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(0, 1, 6), rng.normal(0, 1, 6)
    result = independent_difference(x, y)
    se = np.sqrt(x.var(ddof=1) / 6 + y.var(ddof=1) / 6)
    assert 2.5 * se < result["ci_high"] - result["ci_low"] < 5 * se
    pairwise = bootstrap_ci(np.subtract.outer(x, y).ravel())
    assert pairwise[1] - pairwise[0] < 2.5 * se  # what claim (c) did: a CI too narrow for 6 vs 6 runs


def test_a_verdict_in_either_direction_needs_the_adjusted_p():
    assert verdict(-0.03, -0.05, -0.01, 0.075, +1, 0.02) == "inconclusive at this sample size"
    assert verdict(-0.03, -0.05, -0.01, 0.01, +1, 0.02).startswith("not supported (effect in the opposite")
    assert verdict(0.03, 0.01, 0.05, 0.075, +1, 0.02) == "inconclusive at this sample size"
    assert verdict(0.03, 0.01, 0.05, 0.01, +1, 0.02) == "supported"


def test_paired_difference_reports_the_smallest_attainable_p():
    assert paired_difference(pd.Series([1.0, 2.0, 3.0]), pd.Series([0.0, 0.0, 0.0]))["min_p"] == pytest.approx(0.25)


def test_findings_page_gives_the_mechanism_fit_per_model_or_says_why_not():
    from selfdistill.findings import render

    claims = pd.DataFrame({"claim": []})
    assert "No checkpoints of trained runs in this grid." in render(claims, pd.DataFrame(), "# findings")
    fit = pd.DataFrame(
        {
            "term": ["intercept", "slope"],
            "coefficient": [-0.01, 0.2],
            "ci_low": [-0.03, 0.1],
            "ci_high": [0.01, 0.3],
            "n_points": 40,
            "n_runs": 8,
            "d_epistemic_min": -0.8,
            "d_epistemic_max": 0.1,
        }
    )
    page = render(claims, pd.concat([fit.assign(model="a"), fit.assign(model="b")]), "# f", worlds={"a": "null"})
    assert "| a (null) | 8 | 40 | -0.80 to +0.10 | +0.200 [+0.100, +0.300] | -0.010 [-0.030, +0.010] |" in page
    assert "| b | 8 | 40 |" in page


def test_floating_point_residue_is_no_effect():
    """(0.45 - 0.4) - (0.85 - 0.8) is about -1e-17 in floating point, the same sign on every problem:
    a sign-flip test called it significant (p ~ 1e-4) before such residue was set to zero."""
    from selfdistill.stats import paired_difference

    ids = [f"p{i}" for i in range(40)]
    arm = pd.Series(0.45, index=ids) - pd.Series(0.4, index=ids)
    base = pd.Series(0.85, index=ids) - pd.Series(0.8, index=ids)
    assert (arm - base).abs().max() > 0  # the residue is there
    result = paired_difference(arm, base)
    assert result["effect"] == 0 and result["p_value"] == 1.0


def test_the_uncertainty_ablations_run_for_context_teachers_only():
    """The default's grid: on-policy's ablations cross the solution teacher; the none control runs standard
    only; GRPO, without a teacher, runs once."""
    from selfdistill import grid

    config = {
        "methods": ["onpolicy", "grpo"],
        "richness": ["none", "solution"],
        "coverage": [64],
        "seeds": [0, 1],
        "onpolicy": {"ablations": ["standard", "preserve", "suppress"]},
    }
    assert grid.runs(config) == [
        "onpolicy/none/standard/c64_s0",
        "onpolicy/none/standard/c64_s1",
        *[f"onpolicy/solution/{a}/c64_s{s}" for a in ("standard", "preserve", "suppress") for s in (0, 1)],
        "grpo/none/standard/c64_s0",
        "grpo/none/standard/c64_s1",
    ]
