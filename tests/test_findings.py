"""The findings page a reader uses at a glance: every row names its model, the headline first (per
world and arm, predicted vs measured, beside the paper's numbers), a claim the grid cannot test as one
line at the end, and the mechanism fit per model on changes from that model's own base."""

import functools
import re

import numpy as np
import pandas as pd
import pytest
from docutils.core import publish_parts

from selfdistill.findings import (
    HEADLINE_LEGEND,
    claims_table,
    evaluate_claims,
    headline,
    headline_rst,
    mechanism_points,
    render,
)
from selfdistill.organism import organism_effects

from test_organism import ORGANISM, _problems_table

WORLDS = {"toy": "guess_check", "toy_null": "null"}
ARM = {"method": "onpolicy", "richness": "solution", "ablation": "standard", "coverage": 64}
DROP = {"toy": 0.30, "toy_null": 0.03}  # each model's own OOD drop: a row without its model could be either


def claims_inputs():
    """Per-problem evaluations and teacher traces of two models whose arms differ by a known amount."""
    problems, teacher = [], []
    for model, drop in DROP.items():
        for i in range(40):
            base = 0.5 + 0.01 * i
            row = {"model": model, "eval_set": "ood", "problem_id": f"p{i}", "ablation": "standard"}
            problems.append(
                {**row, "method": "base", "richness": "none", "coverage": np.nan, "seed": np.nan, "accuracy": base}
            )
            for seed in range(3):
                problems.append(
                    {
                        **row,
                        "method": "onpolicy",
                        "richness": "solution",
                        "coverage": 64,
                        "seed": seed,
                        "accuracy": base - drop,
                    }
                )
            for richness, words in (("none", 3.0), ("solution", 3.0 - 10 * drop)):
                teacher.append(
                    {
                        "model": model,
                        "richness": richness,
                        "coverage": 64,
                        "seed": 0,
                        "problem_id": f"p{i}",
                        "epistemic_count": words,
                        "mean_tokens": 100 * words,
                    }
                )
    logs = pd.DataFrame(columns=["model", "method", "richness", "ablation", "coverage", "seed", "step", "reward"])
    return pd.DataFrame(problems), pd.DataFrame(teacher), logs


@functools.cache  # pure: computed once for the module's tests, which only read it
def two_models_claims():
    problems, teacher, logs = claims_inputs()
    return pd.concat([evaluate_claims(problems, teacher, logs, m, "solution") for m in DROP], ignore_index=True)


def test_every_claims_row_names_its_model_and_carries_that_models_effect():
    claims = two_models_claims()
    assert claims["model"].tolist() == ["toy", "toy", "toy", "toy_null", "toy_null", "toy_null"]
    ood = claims[claims["claim"] == "b"].set_index("model")["effect"]
    assert ood.to_dict() == pytest.approx({m: -d for m, d in DROP.items()})  # hand-computed: base - drop
    words = claims[claims["comparison"].str.startswith("teacher epistemic")].set_index("model")["effect"]
    assert words.to_dict() == pytest.approx({m: -10 * d for m, d in DROP.items()})
    page = render(claims, pd.DataFrame(), "# f", worlds=WORLDS)
    rows = [line for line in page.splitlines() if re.match(r"\| (?!model|---)", line)]
    assert len(rows) == 6 and all(re.match(r"\| toy(_null)? \((guess_check|null)\) \|", r) for r in rows), rows


def test_the_paper_numbers_sit_beside_the_claims_they_belong_to_whatever_the_model():
    claims = two_models_claims()
    for _, paper in claims.groupby("model")["paper"]:
        assert paper.tolist()[:2] == [
            "none 182.5 → solution 8.8 epistemic words (Table 1)",
            "none 13,054 → solution 1,873 tokens (Table 1)",
        ]
        assert "AIME24 ≈ −40% relative" in paper.iloc[2]
    page = render(two_models_claims(), pd.DataFrame(), "# f", worlds=WORLDS)
    assert page.count("(Table 1)") == 4 and "—" not in page.split("## The paper's claims")[1].split("**Not")[0]


def test_a_claim_the_grid_cannot_test_is_one_line_at_the_end():
    page = render(two_models_claims(), pd.DataFrame(), "# f", worlds=WORLDS)
    headings = re.findall(r"^#+ .*", page, flags=re.M)
    assert not any(h.startswith(("### (c)", "### (d)")) for h in headings) and "Not tested: the grid" not in page
    last = page.rstrip().splitlines()[-1]
    assert last.startswith("**Not tested by this grid:** (c) Low coverage") and "(d) Preserving uncertainty" in last
    assert page.count("Not tested") == 1


@functools.cache
def organism_table():
    problems = _problems_table(
        {
            "toy": {"ood": (0.8, 0.4), "ood_on": (0.85, 0.85), "test": (0.95, 0.95)},
            "toy_null": {"ood": (0.4, 0.4), "ood_on": (0.4, 0.4), "test": (0.95, 0.95)},
        }
    )
    return organism_effects(problems, WORLDS, ORGANISM, [("toy", "toy_null")])


def test_the_headline_has_a_row_per_world_and_arm_with_prediction_effect_interval_and_verdict():
    table = headline(organism_table())
    assert table["world (model)"].tolist() == [
        "guess_check (toy)",
        "null (toy_null)",
        "guess_check - null (toy - toy_null)",
        "paper (DeepSeek-R1-Distill-Qwen-7B)",
    ]
    toy, null, between, paper = (table.iloc[i] for i in range(4))
    assert re.fullmatch(r"↓ -0\.4\d\d \[-0\.4\d\d, -0\.3\d\d\] ✓", toy["OOD accuracy"]), toy["OOD accuracy"]
    assert re.fullmatch(r"↑ \+0\.4\d\d \[\+0\.\d+, \+0\.\d+\] ✓", toy["re-enable recovery"])
    assert re.fullmatch(r"= [+-]0\.0\d\d \[.*\] ✓", null["OOD accuracy"])  # predicted no effect, none measured
    assert between["OOD accuracy"].startswith("↓ -0.4") and between["in-domain accuracy"] == ""
    assert "−40%" in paper["OOD accuracy"] and paper["arm"] == toy["arm"] == "on-policy, solution teacher"


def test_the_page_and_the_report_open_with_the_headline():
    effects = organism_table()
    page = render(two_models_claims(), pd.DataFrame(), "# Findings", effects, "## Organism details\n", WORLDS)
    headings = re.findall(r"^## .*", page, flags=re.M)
    assert headings[0] == "## Headline: each arm against its base model, per world"
    assert headings[1:] == [
        "## The paper's claims, per model",
        "## Organism details",
        "## Does OOD accuracy track hedging across runs? (descriptive, per model)",
    ]
    html = publish_parts(headline_rst(headline(effects), "Headline", HEADLINE_LEGEND), writer="html")["body"]
    assert html.count("<tr") == 5 and "guess_check - null" in html and "✓" in html
    # A grid without a guess world (config/paper.yaml): the report opens with the claims, per model.
    claims = claims_table(two_models_claims(), WORLDS)
    html = publish_parts(headline_rst(claims, "Claims", "legend"), writer="html")["body"]
    assert html.count("<tr") == 7 and html.count("toy_null (null)") == 3 and "(Table 1)" in html


def test_the_draws_section_follows_the_headline_and_says_so_with_one_draw_per_world():
    from test_draws import draw_outputs

    from selfdistill.draws import ONE_DRAW, primary_tests

    effects, _, draws = draw_outputs()
    page = render(pd.DataFrame(), pd.DataFrame(), "# F", effects, "## Organism details\n", None, None, draws)
    headings = re.findall(r"^## .*", page, flags=re.M)
    assert headings[:3] == [
        "## Headline: each arm against its base model, per world",
        "## Across pretrained draws",
        "## Organism details",
    ]
    section = page.split("## Across pretrained draws")[1].split("## Organism details")[0]
    assert "**Verdicts across draws**" in section and "| rate share | toy_s0 | 64 | 2 |" in section
    # the tests the statistics rule wrote are the ones shown (not recomputed)
    written = primary_tests(draws).assign(verdict="as written")
    assert "**as written**" in render(pd.DataFrame(), pd.DataFrame(), "# F", effects, "", None, None, draws, written)
    # one draw per world (the default): one line after the headline; no organism: nothing
    one = render(pd.DataFrame(), pd.DataFrame(), "# F", organism_table(), "## Organism details\n", WORLDS)
    assert one.split("figures/organism.png)\n\n")[1].startswith(ONE_DRAW + "\n\n## Organism details")
    assert ONE_DRAW not in render(two_models_claims(), pd.DataFrame(), "# F", worlds=WORLDS)


def test_mechanism_points_are_changes_from_each_models_own_base():
    rows = []
    for model, base in (("toy", 0.71), ("toy_null", 0.45)):
        for step, acc, words in ((0, base, 1.0), (6, base - 0.1, 0.6), (12, base - 0.2, 0.2)):
            rows.append(
                {
                    "model": model,
                    **ARM,
                    "seed": 0,
                    "eval_set": "ood",
                    "step": step,
                    "accuracy": acc,
                    "epistemic_count": words,
                    "mean_tokens": 50.0,
                }
            )
    points = mechanism_points(pd.DataFrame(rows), "ood")
    assert points["d_accuracy"].tolist() == pytest.approx([-0.1, -0.2, -0.1, -0.2])
    assert points["d_epistemic"].tolist() == pytest.approx([-0.4, -0.8, -0.4, -0.8])
