"""bench/teacher_in_checks.py's token classes of a check, bench/organism_draws.py's between-world
rows (its other functions are selfdistill.draws, tested in tests/test_draws.py) and
bench/organism_curves.py's table."""

import importlib.util
import re
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "bench" / "teacher_in_checks.py"


def _bench(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPT.with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_between_world_rows_are_the_solution_arms_only():
    import pandas as pd

    # One seed pair with the solution arm, its preserve ablation and the control: the mean over pairs
    # must read the first row only (reading every solution row once averaged the preserve arm's in).
    rows = [
        {"richness": "solution", "ablation": "standard", "effect": -0.15},
        {"richness": "solution", "ablation": "preserve", "effect": 0.0},
        {"richness": "none", "ablation": "standard", "effect": 0.0},
    ]
    table = pd.DataFrame(
        [
            {"model": "toy - toy_null", "world": "guess_check - null", "method": "onpolicy", "stratum": "all", **r}
            for r in rows
        ]
    )
    module = _bench("organism_draws")
    assert module.between_rows(table)["effect"].tolist() == [-0.15]
    with pytest.raises(ValueError, match="two guess_check - null rows"):
        module.between_rows(pd.concat([table, table.iloc[[0]]]))


def test_teacher_in_checks_token_classes_and_right_digits():
    module = _bench("teacher_in_checks")
    # a check with a slip in the last result's units digit (12+5=18) and one in a first digit (3+9=22)
    text = (
        "<think>Guess: 17. Hmm, let me check: 3+9=22. 12+5=18. I guessed 17. Wait, that seems wrong. It is 18.</think>"
    )
    pieces = re.findall(r"<think>|</think>| ?[A-Za-z]+|\d|.", text + " The answer is \\boxed{18}.")
    classes, right = module.token_classes(pieces)
    assert "".join(pieces).startswith(text)
    by_class = {}
    for piece, c in zip(pieces, classes, strict=True):
        by_class.setdefault(c, []).append(piece)
    assert by_class["guess"] == ["1", "7"] and by_class["Hmm"] == [" Hmm"] and by_class["Yes/Wait"] == [" Wait"]
    assert by_class["chain operand"] == ["3", "9", "1", "2", "5"]
    assert by_class["chain result"] == ["2", "2", "1", "8"]
    assert by_class["restated guess"] == ["1", "7"] and by_class["correction"] == ["1", "8"]
    assert by_class["final answer"] == ["1", "8"]
    # right digits: 3+9 -> "1" at the first result digit (shown "2": the next is not scored); 12+5 -> "1", "7"
    results = [k for k, c in enumerate(classes) if c == "chain result"]
    assert right == {results[0]: "1", results[2]: "1", results[3]: "7"}


def test_organism_curves_average_an_arms_change_from_the_base_per_step():
    import pandas as pd

    # Two training seeds of one arm on one model, from bases 0.5 and 0.7 (each run's step 0).
    rows = []
    for seed, base, later in [(0, 0.5, [0.4, 0.3]), (1, 0.7, [0.7, 0.5])]:
        for step, acc in zip([0, 6, 12], [base, *later], strict=True):
            rows.append(
                {"model": "toy", "method": "onpolicy", "richness": "solution", "ablation": "standard", "coverage": 64}
                | {"seed": seed, "step": step, "eval_set": "ood", "accuracy": acc, "epistemic_count": 1.0 - step / 12}
            )
    curves = pd.DataFrame(rows + [{**rows[0], "eval_set": "test", "step": 6, "accuracy": 0.0}])  # another set
    module = _bench("organism_curves")
    table = module.curve_table(curves, {"toy": "guess_check"}, "ood")
    assert table["step"].tolist() == [6, 12] and table["runs"].tolist() == [2, 2]
    assert table["d_accuracy"].tolist() == pytest.approx([(-0.1 + 0.0) / 2, (-0.2 - 0.2) / 2])
    assert table["d_epistemic"].tolist() == pytest.approx([-0.5, -1.0]) and set(table["world"]) == {"guess_check"}
    report = {"measured": "here", "config": "c", "eval_set": "ood", "rows": table.to_dict("records")}
    row = "| toy | guess_check | onpolicy/solution/standard | -0.050 / -0.50 | -0.200 / -1.00 |"
    assert row in module.render(report)
