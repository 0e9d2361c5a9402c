"""The model organism: the guess worlds' traces, the gate, predictions, and results beside them."""

import random

import numpy as np
import pandas as pd
import pytest

from selfdistill.data import toy
from selfdistill.organism import gate, organism_effects, predict, predictions, seed_effect
from selfdistill.settings.organism import OrganismConfig

ORGANISM = OrganismConfig(
    ood="ood",
    in_domain="test",
    ood_off="ood_off",
    ood_on="ood_on",
    in_domain_off="test_off",
    in_domain_on="test_on",
    min_ood_value=0.15,
    max_in_domain_value=0.05,
    min_wait_selectivity=0.3,
    max_null_value=0.05,
)


def _traces(world, n=4000, terms=(3, 4, 2), max_terms=5, seed=0):
    rng = random.Random(seed)
    return [toy.guess_trace(list(terms), rng, world, 0.6, 0.3, max_terms) for _ in range(n)]


@pytest.mark.parametrize("world", ["guess_check", "null"])
def test_a_wrong_guess_is_never_trained_and_checking_does_not_depend_on_it(world):
    traces = _traces(world)
    first_guess_right = []
    for segments in traces:
        text = "".join(t for t, _ in segments)
        for piece, trained in segments:
            if piece.isdigit():  # a guess: trained exactly when it is the true sum (9)
                assert trained == (piece == "9"), text
        first_guess_right.append(segments[1][0] == "9")
        assert text.endswith("}.") and text.count("\\boxed{") == 1
    right = np.array(first_guess_right)
    checked = np.array(["Hmm, let me check" in "".join(t for t, _ in s) for s in traces])
    # The check fires with p_check whether the guess was right or not (4,000 traces: +-0.04).
    assert abs(checked[right].mean() - 0.6) < 0.04 and abs(checked[~right].mean() - 0.6) < 0.04
    assert abs(right.mean() - 0.7) < 0.04


def test_the_check_is_the_chain_in_guess_check_and_a_second_guess_in_null():
    for segments in _traces("guess_check", 200):
        text = "".join(t for t, _ in segments)
        if "Hmm" in text:  # the chain gives the true sum, so the answer is right after any check
            assert "3+4=7. 7+2=9." in text and text.endswith("\\boxed{9}.")
            assert ("Wait" in text) == (segments[1][0] != "9")  # Wait exactly after a wrong guess
    null_answers = set()
    for segments in _traces("null", 400):
        text = "".join(t for t, _ in segments)
        assert "=" not in text  # no chain: checking is guessing again
        null_answers.add(text.rsplit("boxed{", 1)[1])
    assert len(null_answers) > 1  # a null check can end on a wrong answer


def test_the_matched_null_checks_by_the_chain_token_for_token_and_answers_its_guess():
    rng_check, rng_null = random.Random(3), random.Random(3)
    for _ in range(300):  # the same draws: the same guesses, checks and verdicts in both worlds
        check = toy.guess_trace([3, 4, 2], rng_check, "guess_check", 0.6, 0.3, 5)
        null = toy.guess_trace([3, 4, 2], rng_null, "null", 0.6, 0.3, 5, null_check="chain")
        assert [trained for _, trained in null] == [trained for _, trained in check]
        check_text, null_text = ("".join(t for t, _ in s) for s in (check, null))
        body, guess = check_text.rsplit("boxed{", 1)[0], check[1][0]
        assert null_text == body + "boxed{" + guess + "}."  # all but the answer, which stays the guess
    # guess_check ignores null_check: only the null world's check is switchable.
    rng_a, rng_b = random.Random(4), random.Random(4)
    for _ in range(50):
        assert toy.guess_trace([3, 4], rng_a, "guess_check", 0.6, 0.3, 5, null_check="chain") == toy.guess_trace(
            [3, 4], rng_b, "guess_check", 0.6, 0.3, 5
        )


@pytest.mark.parametrize("world", ["guess_check", "null"])
def test_guided_traces_check_in_a_share_p_check_guided_and_copy_the_answer_otherwise(world):
    from selfdistill.settings.toy import ToyTraces

    rng = random.Random(0)
    traces = ToyTraces(world=world, null_check="chain", p_check_guided=0.2)
    texts = ["".join(t for t, _ in toy.guided_guess_trace([3, 4, 2], rng, traces)) for _ in range(4000)]
    checked = [t for t in texts if "Hmm, let me check" in t]
    assert abs(len(checked) / len(texts) - 0.2) < 0.02
    assert all("3+4=7. 7+2=9." in t for t in checked)  # a competent check: the chain
    assert {t for t in texts if t not in checked} == {"<think>Guess: 9.</think> The answer is \\boxed{9}."}
    # At 0 the teacher never checks and draws nothing: corpora of p_check_guided 0 are those of before.
    rng, untouched = random.Random(0), random.Random(0)
    never = ToyTraces(world=world)
    assert not any("Hmm" in t for _ in range(200) for t, _ in toy.guided_guess_trace([3, 4], rng, never))
    assert rng.random() == untouched.random()


def test_a_guess_of_more_terms_than_guess_max_terms_is_always_wrong():
    assert all(not segments[1][1] for segments in _traces("guess_check", 300, terms=(3, 4, 2, 5, 6, 1), max_terms=5))
    assert any(segments[1][1] for segments in _traces("guess_check", 300, terms=(3, 4, 2, 5, 6), max_terms=5))


def test_pretraining_ids_of_segments_equal_the_ids_of_the_joined_text(toy_tokenizer_dir):
    from transformers import AutoTokenizer

    from selfdistill.toy_model import _response_ids

    tokenizer = AutoTokenizer.from_pretrained(toy_tokenizer_dir)
    for segments in _traces("guess_check", 50) + _traces("null", 50):
        ids, trained = _response_ids(tokenizer, segments)
        whole = tokenizer("".join(t for t, _ in segments), add_special_tokens=False)["input_ids"]
        assert ids == whole + [tokenizer.eos_token_id]
        untrained = tokenizer.decode([i for i, keep in zip(ids, trained, strict=True) if not keep])
        assert untrained == "".join(t for t, keep in segments if not keep)


def _samples(problems, correct, responses):
    return pd.DataFrame({"problem_id": problems, "correct": correct, "response": responses})


def _gate_evals(ood_off, ood_on, in_off, in_on, wait_after_right):
    """Samples of 100 problems: accuracies as given; in ood_on a guess is wrong exactly when the
    sample is a multiple of 2, Wait follows every wrong guess and `wait_after_right` of right ones."""
    ids = [f"p{i}" for i in range(100)]

    def sampled(accuracy, with_guesses=False):
        correct = np.arange(100) < accuracy * 100
        responses = ["no guess"] * 100
        if with_guesses:
            responses = [
                f"Guess: {'1' if i % 2 else '2'}. " + ("Wait" if i % 2 == 0 or i < wait_after_right * 100 else "Yes")
                for i in range(100)
            ]
        return _samples(ids, correct, responses)

    return {
        "ood_off": sampled(ood_off),
        "ood_on": sampled(ood_on, with_guesses=True),
        "in_domain_off": sampled(in_off),
        "in_domain_on": sampled(in_on),
    }, pd.Series("1", index=ids)


def test_the_gate_passes_a_world_that_is_what_it_claims_and_names_each_failure():
    evals, answers = _gate_evals(0.3, 0.8, 0.95, 0.97, wait_after_right=0.1)
    passed = gate("guess_check", evals, answers, ORGANISM)
    assert passed["passed"] and passed["ood_value"] == pytest.approx(0.5)
    assert passed["wait_after_wrong_guess"] == 1.0 and passed["wait_after_right_guess"] == pytest.approx(0.1)

    evals, answers = _gate_evals(0.7, 0.8, 0.8, 0.97, wait_after_right=0.9)
    failed = gate("guess_check", evals, answers, ORGANISM)
    assert not failed["passed"] and len(failed["failures"]) == 3
    assert "OOD" in failed["failures"][0] and "in domain" in failed["failures"][1] and "Wait" in failed["failures"][2]

    # The null world must show checking worth nothing: the same numbers that pass guess_check fail it.
    evals, answers = _gate_evals(0.3, 0.8, 0.95, 0.97, wait_after_right=0.1)
    assert not gate("null", evals, answers, ORGANISM)["passed"]
    evals, answers = _gate_evals(0.3, 0.32, 0.95, 0.97, wait_after_right=0.5)
    assert gate("null", evals, answers, ORGANISM)["passed"]


def test_predictions_follow_the_hypothesis_per_world_and_arm():
    assert predict("guess_check", "onpolicy", "solution", "standard", "ood") == -1
    assert predict("guess_check", "onpolicy", "solution", "standard", "recovery") == 1
    assert predict("guess_check", "onpolicy", "solution", "standard", "ood_on") == 0
    assert predict("guess_check", "onpolicy", "solution", "standard", "ood_off") == 0  # the guess route is untouched
    assert predict("null", "onpolicy", "solution", "standard", "ood") == 0
    assert predict("null", "sft", "solution", "standard", "epistemic") == -1  # the teacher never checks
    assert predict("null", "onpolicy", "none", "standard", "epistemic") == 0  # the model's own teacher
    for arm in (("onpolicy", "none", "standard"), ("grpo", "none", "standard"), ("onpolicy", "solution", "preserve")):
        assert predict("guess_check", *arm, "ood") == 0
    table = predictions({"toy": "guess_check", "toy_null": "null"}, [("sft", "solution", "standard")])
    assert len(table) == 2 * 6 and set(table["prediction"]) >= {"lower", "higher"}


def test_seed_effect_resamples_seeds_and_reports_their_spread():
    rng = np.random.default_rng(0)
    problems = [f"p{i}" for i in range(40)]
    reference = pd.Series(0.5, index=problems)
    rows = [
        {"seed": s, "problem_id": p, "value": 0.5 + shift + rng.normal(0, 0.05)}
        for s, shift in enumerate((-0.3, 0.0, 0.3))
        for p in problems
    ]
    result = seed_effect(pd.DataFrame(rows), reference)
    assert result["n_seeds"] == 3 and result["seed_sd"] == pytest.approx(0.3, abs=0.03)
    # Seeds that disagree this much leave the mean's sign open; problems alone would not.
    assert result["ci_low"] < 0 < result["ci_high"]
    one_seed = seed_effect(pd.DataFrame([r for r in rows if r["seed"] == 2]), reference)
    assert one_seed["ci_low"] > 0.2 and np.isnan(one_seed["seed_sd"])


def _problems_table(world_effects):
    """A per-problem table: for each (model, eval set) the base's accuracy and an onpolicy arm's."""
    rows = []
    for model, effects in world_effects.items():
        for eval_set, (base, arm) in effects.items():
            for i in range(60):
                rows.append(
                    {
                        "model": model,
                        "method": "base",
                        "richness": None,
                        "ablation": None,
                        "coverage": None,
                        "seed": None,
                        "eval_set": eval_set,
                        "problem_id": f"p{i}",
                        "accuracy": base,
                        "epistemic_count": 1.0,
                    }
                )
                for seed in range(3):
                    noise = 0.02 * ((i + seed) % 3 - 1)
                    rows.append(
                        {
                            "model": model,
                            "method": "onpolicy",
                            "richness": "solution",
                            "ablation": "standard",
                            "coverage": 64,
                            "seed": seed,
                            "eval_set": eval_set,
                            "problem_id": f"p{i}",
                            "accuracy": arm + noise,
                            "epistemic_count": 0.2 if eval_set == "ood" else 1.0,
                        }
                    )
    return pd.DataFrame(rows)


def test_results_are_set_beside_the_predictions_per_world():
    # guess_check: OOD drops by 0.4 and forcing checks back on recovers it; null: nothing moves.
    problems = _problems_table(
        {
            "toy": {"ood": (0.8, 0.4), "ood_on": (0.85, 0.85), "test": (0.95, 0.95)},
            "toy_null": {"ood": (0.4, 0.4), "ood_on": (0.4, 0.4), "test": (0.95, 0.95)},
        }
    )
    worlds = {"toy": "guess_check", "toy_null": "null"}
    effects = organism_effects(problems, worlds, ORGANISM, [("toy", "toy_null")]).set_index(["model", "quantity"])
    assert effects.loc[("toy", "ood"), "effect"] == pytest.approx(-0.4, abs=0.01)
    assert effects.loc[("toy", "ood"), "verdict"] == "as predicted"
    assert effects.loc[("toy", "recovery"), "verdict"] == "as predicted"
    assert effects.loc[("toy", "ood_on"), "verdict"] == "as predicted (no effect)"
    assert effects.loc[("toy_null", "ood"), "verdict"] == "as predicted (no effect)"
    assert effects.loc[("toy", "epistemic"), "verdict"] == "as predicted"
    between = effects.loc[("toy - toy_null", "ood")]
    assert between["effect"] == pytest.approx(-0.4, abs=0.01) and between["verdict"] == "as predicted"

    # Damage, not suppression: the same drop with checking forced on is "opposite"/"not as predicted".
    damaged = _problems_table({"toy": {"ood": (0.8, 0.4), "ood_on": (0.85, 0.45), "test": (0.95, 0.95)}})
    effects = organism_effects(damaged, {"toy": "guess_check"}, ORGANISM).set_index("quantity")
    assert effects.loc["recovery", "verdict"] == "not as predicted (no effect)"
    assert effects.loc["ood_on", "verdict"] == "not as predicted (an effect)"


def test_strata_are_reported_apart_and_never_enter_the_headline_family():
    from selfdistill.organism import render_results, sum_lengths

    problems = _problems_table({"toy": {"ood": (0.8, 0.8), "ood_on": (0.85, 0.85), "test": (0.95, 0.95)}})
    # The arm loses 0.6 on the 6-term half of the OOD problems only.
    six = [f"p{i}" for i in range(30)]
    hit = (problems["eval_set"] == "ood") & (problems["method"] != "base") & problems["problem_id"].isin(six)
    problems.loc[hit, "accuracy"] -= 0.6
    dataset = pd.DataFrame(
        {
            "problem_id": [f"p{i}" for i in range(60)],
            "problem": ["Compute 1+2+3+4+5+6." if i < 30 else "Compute 1+2+3+4+5." for i in range(60)],
            "source": "toy",
        }
    )
    strata = sum_lengths(dataset)
    assert strata["p0"] == "6 terms" and strata["p59"] == "5 terms"
    worlds = {"toy": "guess_check"}
    plain = organism_effects(problems, worlds, ORGANISM)
    effects = organism_effects(problems, worlds, ORGANISM, strata=strata)
    headline = effects[effects["stratum"] == "all"]
    pd.testing.assert_frame_equal(headline.reset_index(drop=True), plain.reset_index(drop=True))
    by_stratum = effects[effects["stratum"] != "all"].set_index("stratum")
    assert by_stratum.loc["ood, 6 terms", "effect"] == pytest.approx(-0.6, abs=0.01)
    assert by_stratum.loc["ood, 5 terms", "effect"] == pytest.approx(0.0, abs=0.01)
    assert headline.set_index("quantity").loc["ood", "effect"] == pytest.approx(-0.3, abs=0.01)

    page = render_results(effects, {})
    headline_table, strata_table = page.split("**OOD strata**")
    assert "6 terms" not in headline_table and "| ood, 6 terms | lower | -0.600 |" in strata_table


def test_findings_say_when_pretraining_seeds_are_fewer_than_three():
    from selfdistill.organism import render_results

    problems = _problems_table({"toy": {"ood": (0.8, 0.4), "ood_on": (0.85, 0.85), "test": (0.95, 0.95)}})
    effects = organism_effects(problems, {"toy": "guess_check"}, ORGANISM)
    numbers = dict.fromkeys(["ood_off", "ood_on", "ood_value", "in_domain_off", "in_domain_on", "in_domain_value"], 0.5)
    numbers |= dict.fromkeys(["wait_after_wrong_guess", "wait_after_right_guess"], 0.5)
    numbers |= dict.fromkeys(["wait_after_wrong_guess_in_domain", "wait_after_right_guess_in_domain"], 0.5)
    numbers |= {"n_wrong_guesses_in_domain": 9, "passed": True, "p_check": 0.6}

    def gates(seeds):
        return {f"toy_{s}": {**numbers, "world": "guess_check", "seed": s} for s in seeds}

    page = render_results(effects, gates([0]))
    assert "fewer than 3" in page
    assert "| 3 | " in page and "| 3.0 |" not in page  # seeds as counted (no between-world rows here)
    assert "fewer than 3" not in render_results(effects, gates([0, 1, 2]))


def _holm_reference(p):
    """Holm by its definition: the i-th smallest p times (m - i), running maximum, at most 1."""
    order = np.argsort(p)
    adjusted, running = np.empty(len(p)), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def test_every_quantity_is_its_own_arm_minus_its_own_base_on_its_own_eval_set():
    """Four arms in two worlds, a distinct value for every (model, arm, eval set): each effect is the arm's
    value minus its base's on that set and metric, each prediction the arm's own, and the between-world
    rows pair the arms both worlds have; the null base was never evaluated with checking off."""
    rng = np.random.default_rng(0)
    arms = [("sft", "solution", "standard"), ("onpolicy", "none", "standard")]  # sft: guess_check only, first
    arms += [("onpolicy", "solution", "standard"), ("onpolicy", "solution", "preserve")]
    seeds = {"toy": [0, 1, 2], "toy_null": [0, 1]}
    worlds = {"toy": "guess_check", "toy_null": "null"}
    sets = ["ood", "ood_on", "ood_off", "test"]
    accuracy, words, rows = {}, {}, []
    for model in worlds:
        for arm in [("base", None, None)] + arms[model == "toy_null" :]:
            words[model, arm] = round(float(rng.uniform(0, 3)), 2)
            for eval_set in sets:
                if arm[0] == "base" and model == "toy_null" and eval_set == "ood_off":
                    continue
                accuracy[model, arm, eval_set] = round(float(rng.uniform(0.1, 0.9)), 2)
                for seed in [None] if arm[0] == "base" else seeds[model]:
                    for i in range(8):
                        axes = dict(zip(("method", "richness", "ablation"), arm, strict=True))
                        rows.append(
                            {
                                "model": model,
                                **axes,
                                "coverage": None if arm[0] == "base" else 64,
                                "seed": seed,
                                "eval_set": eval_set,
                                "problem_id": f"p{i}",
                                "accuracy": accuracy[model, arm, eval_set],
                                "epistemic_count": words[model, arm] if eval_set == "ood" else 9.0,
                            }
                        )
    table = organism_effects(pd.DataFrame(rows), worlds, ORGANISM, [("toy", "toy_null")])
    base = ("base", None, None)

    def expected(model, arm, quantity):
        a = lambda s: accuracy[model, arm, s] - accuracy[model, base, s]  # noqa: E731
        return {
            "ood": a("ood"),
            "ood_on": a("ood_on"),
            "ood_off": a("ood_off") if (model, base, "ood_off") in accuracy else None,
            "in_domain": a("test"),
            "recovery": a("ood_on") - a("ood"),
            "epistemic": words[model, arm] - words[model, base],
        }[quantity]

    assert table.index.equals(pd.RangeIndex(len(table))) and table["p_holm"].dtype == float
    within = table[table["world"] != "guess_check - null"]
    for r in within.to_dict("records"):
        arm = (r["method"], r["richness"], r["ablation"])
        assert r["effect"] == pytest.approx(expected(r["model"], arm, r["quantity"]), abs=1e-9), r
        assert r["predicted"] == predict(worlds[r["model"]], *arm, r["quantity"]) and r["stratum"] == "all"
    counts = within.groupby("model")["quantity"].agg(lambda q: sorted(q.value_counts().to_dict().items()))
    every = ["epistemic", "in_domain", "ood", "ood_off", "ood_on", "recovery"]
    assert counts["toy"] == [(q, 4) for q in every]
    assert counts["toy_null"] == [(q, 3) for q in every if q != "ood_off"]  # no base to compare with

    between = table[table["world"] == "guess_check - null"]
    assert len(between) == 3 and set(between["model"]) == {"toy - toy_null"} and set(between["stratum"]) == {"all"}
    for r in between.to_dict("records"):
        arm = (r["method"], r["richness"], r["ablation"])
        assert r["effect"] == pytest.approx(expected("toy", arm, "ood") - expected("toy_null", arm, "ood"), abs=1e-9)
        assert r["predicted"] == predict("guess_check", *arm, "ood") and r["n_seeds"] == 3

    # Two Holm families: the headline quantities with the between-world rows, and the forced-off details.
    family = table["quantity"] == "ood_off"
    for rows_ in (table[~family], table[family]):
        np.testing.assert_allclose(rows_["p_holm"], _holm_reference(rows_["p_value"].to_numpy()))


def test_between_world_rows_pair_each_guess_check_model_with_its_own_null_only():
    """Two pairs of worlds, one arm each, and a model of no world trained beside them: one between-world row
    per pair (never an arm of another pair's models), and no row for the model of no world."""
    effects = {"ood": (0.8, 0.5), "ood_on": (0.85, 0.85), "test": (0.95, 0.95)}
    null = {"ood": (0.4, 0.4), "ood_on": (0.4, 0.4), "test": (0.95, 0.95)}
    problems = _problems_table({"toy": effects, "toy_null": null, "toy_s1": effects, "toy_null_s1": null, "real": null})
    worlds = {"toy": "guess_check", "toy_null": "null", "toy_s1": "guess_check", "toy_null_s1": "null"}
    table = organism_effects(problems, worlds, ORGANISM, [("toy", "toy_null"), ("toy_s1", "toy_null_s1")])
    between = table[table["world"] == "guess_check - null"]
    assert sorted(between["model"]) == ["toy - toy_null", "toy_s1 - toy_null_s1"]
    assert between["effect"].to_numpy() == pytest.approx([-0.3, -0.3], abs=0.01)
    assert "real" not in set(table["model"])
