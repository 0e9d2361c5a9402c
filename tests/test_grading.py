import time

import pytest

from selfdistill.grading import GradingPool, extract_answer, final_segment, grade_responses, last_boxed


def test_self_correction_is_graded_on_the_last_box():
    response = r"So \boxed{3}. Wait, actually that is wrong: \boxed{4}"
    assert extract_answer(response) == "4"
    assert grade_responses([response], ["4"], workers=1)[0]["correct"]


def test_nested_braces_are_matched():
    assert last_boxed(r"\boxed{\frac{1}{2}} text") == r"\frac{1}{2}"


def test_unbalanced_last_box_falls_back_to_an_earlier_one():
    assert last_boxed(r"\boxed{5} then \boxed{6") == "5"


def test_no_boxed_answer_is_wrong_and_flagged():
    row = grade_responses(["the answer is 4"], ["4"], workers=1)[0]
    assert row == {"extracted": None, "correct": False, "grade_status": "no_boxed"}


def test_only_text_after_think_is_graded():
    assert extract_answer(r"<think>maybe \boxed{3}</think> so \boxed{4}") == "4"
    assert extract_answer(r"<think>maybe \boxed{3}</think> no box") is None
    # DeepSeek-R1 style: only the closing tag is emitted.
    assert extract_answer(r"maybe \boxed{3}</think> \boxed{5}") == "5"
    # An unfinished think block has no answer segment.
    assert final_segment(r"<think>still thinking \boxed{3}") is None


def test_equivalent_forms_via_math_verify():
    rows = grade_responses([r"\boxed{\frac{1}{2}}", r"\boxed{0.5}", r"\boxed{3}"], ["1/2", r"\frac12", "4"], workers=2)
    assert [r["correct"] for r in rows] == [True, True, False]


def test_pathological_answer_times_out_and_pool_survives():
    huge = "9^{9^{9^{9^{9^{9}}}}}"  # sympy tries to evaluate this for a very long time
    with GradingPool(workers=1, timeout=2.0) as pool:
        start = time.monotonic()
        results = pool.map([("1", huge), ("4", "4"), ("2", "1+1")])
        elapsed = time.monotonic() - start
    assert results[0] == (False, "timeout")
    assert results[1] == (True, "ok")
    assert results[2][0] is True
    assert elapsed < 15
