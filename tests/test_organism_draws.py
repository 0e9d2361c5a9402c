"""bench/teacher_in_checks.py's token classes of a check (the pure functions of bench/organism_draws.py
are selfdistill.draws, tested in tests/test_draws.py)."""

import importlib.util
import re
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "bench" / "teacher_in_checks.py"


def test_teacher_in_checks_token_classes_and_right_digits():
    spec = importlib.util.spec_from_file_location("teacher_in_checks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
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
