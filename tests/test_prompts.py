import pytest
from transformers import AutoTokenizer

from selfdistill import prompts

from configs import TEMPLATES

SOLUTION = r"<think>2+3=5. 5+4=9.</think> The answer is \boxed{9}."


def test_strip_think():
    assert prompts.strip_think(SOLUTION) == r"The answer is \boxed{9}."
    assert prompts.strip_think(r"reasoning...</think> final \boxed{1}") == r"final \boxed{1}"
    assert prompts.strip_think("no tags") == "no tags"


def test_student_prompt_asks_for_boxed():
    turn = prompts.student_user_turn(TEMPLATES.student, "Compute 2+3+4.")
    assert turn == r"Compute 2+3+4. Put the final answer in \boxed{}."


@pytest.mark.parametrize(
    "richness, present, absent",
    [
        ("none", [], ["Correct"]),
        ("answer", ["Correct answer: 9"], ["<think>"]),
        ("solution", [SOLUTION], []),
        ("solution_nothink", [r"The answer is \boxed{9}."], ["<think>", "2+3=5"]),
        ("regen", ["DEMO TEXT"], ["<think>"]),
    ],
)
def test_teacher_contexts(richness, present, absent):
    turn = prompts.teacher_user_turn(TEMPLATES, richness, "Compute 2+3+4.", "9", SOLUTION, demo="DEMO TEXT")
    assert turn.startswith(prompts.student_user_turn(TEMPLATES.student, "Compute 2+3+4."))
    for text in present:
        assert text in turn
    for text in absent:
        assert text not in turn


def test_unknown_richness_is_refused():
    with pytest.raises(ValueError, match="unknown richness 'gold'"):
        prompts.teacher_user_turn(TEMPLATES, "gold", "p")


def test_teacher_and_student_share_the_template_only_the_user_turn_differs(toy_tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(toy_tokenizer_dir)
    student_turn = prompts.student_user_turn(TEMPLATES.student, "Compute 2+3+4.")
    teacher_turn = prompts.teacher_user_turn(TEMPLATES, "solution", "Compute 2+3+4.", "9", SOLUTION)
    student = prompts.chat_prompt(tok, student_turn)
    teacher = prompts.chat_prompt(tok, teacher_turn)
    assert student.replace(student_turn, "<USER>") == teacher.replace(teacher_turn, "<USER>")
    assert student.endswith("<|im_start|>assistant\n")
