"""Grading and epistemic counts on hand-computed cases; each kills mutants the rest of the suite let
survive (docs/mutation.md)."""

import pytest

from selfdistill.grading import extract_answer, final_segment, grade_responses, last_boxed, verify
from selfdistill.settings.grading import GradingConfig


def test_the_answer_segment_is_after_the_last_think_end():
    """Only the text after the last </think> counts, however many there are."""
    assert final_segment("a</think>b</think>c") == "c"
    assert extract_answer(r"x</think>\boxed{2}</think> no box") is None
    assert final_segment("no tags at all") == "no tags at all"


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"\boxed{}", ""),  # an empty box is an (empty) answer, not none
        (r"} \boxed{7}", "7"),  # a stray closing brace before the box
        (r"\boxed{a}{b}", "a"),
        (r"\boxed{1} and \boxed{", "1"),
        (r"\boxed 12,", "12"),
        (r"\boxed 3;", "3"),
        (r"\boxed :", None),  # a brace-less box of punctuation only holds no answer
        (r"\boxed{2} then \boxed .", "2"),
        (r"\fbox {x^{2}}", "x^{2}"),
    ],
)
def test_last_boxed_by_hand(text, expected):
    assert last_boxed(text) == expected


def test_verify_compares_normalized_strings_before_math_verify():
    """Whitespace and a trailing period do not matter; equal values in other forms are equal."""
    assert verify("1 / 2", "1/2.") and verify(r"\frac{1}{2}", "0.5")
    assert not verify("3", "4") and not verify(".5", "5")
    assert not verify("X", "XX")  # only a trailing period is stripped, not other characters


def test_answer_length_limit_is_inclusive():
    """An answer of exactly max_answer_chars is graded; one more character is `too_long`."""
    config = GradingConfig(workers=1, timeout_s=10, max_answer_chars=3)
    rows = grade_responses([r"\boxed{123}", r"\boxed{1234}", "none"], ["123", "1234", "1"], config)
    assert [r["grade_status"] for r in rows] == ["ok", "too_long", "no_boxed"]
    assert [r["correct"] for r in rows] == [True, False, False]
    assert [r["extracted"] for r in rows] == ["123", "1234", None]


def test_grading_uses_the_configured_timeout():
    """An answer sympy cannot finish is graded wrong with status timeout after timeout_s (1 s here),
    not the pool's default of 5 s."""
    import time

    config = GradingConfig(workers=1, timeout_s=1.0, max_answer_chars=1000)
    start = time.monotonic()
    rows = grade_responses([r"\boxed{9^{9^{9^{9^{9^{9}}}}}}", r"\boxed{4}"], ["1", "4"], config)
    assert [(r["correct"], r["grade_status"]) for r in rows] == [(False, "timeout"), (True, "ok")]
    assert time.monotonic() - start < 4.5  # start-up of the worker and its replacement included


def test_a_bare_boxed_token_loses_trailing_punctuation_only():
    """`\\boxed X.` (a letter choice) is X; 2X keeps its X; a token of punctuation alone is no answer."""
    assert last_boxed("so \\boxed X.") == "X"
    assert last_boxed("so \\boxed 2X,") == "2X"
    assert last_boxed("so \\boxed .;") is None
