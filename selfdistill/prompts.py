"""Student and teacher prompts. Both go through the model's chat template with the same
settings (e.g. Qwen3's enable_thinking); only the user turn differs."""

from __future__ import annotations

import re

from selfdistill.grid import RICHNESS
from selfdistill.settings.prompts import Prompts

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)


def strip_think(text: str) -> str:
    """Remove the reasoning part: <think>…</think>, or everything up to a lone </think>
    (DeepSeek-R1 distills open the think block in the template and emit only the closing tag)."""
    text = _THINK_BLOCK.sub("", text)
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    return text.strip()


def fill(template: str, **values) -> str:
    """Replace {name} placeholders; other braces (like \\boxed{}) are left alone."""
    for name, value in values.items():
        template = template.replace("{" + name + "}", str(value))
    return template


def student_user_turn(template: str, problem: str) -> str:
    """The student's user turn; `template` is Prompts.student (evaluation jobs take only that)."""
    return fill(template, problem=problem)


def teacher_user_turn(
    templates: Prompts, richness: str, problem: str, answer: str = "", solution: str = "", demo: str = ""
):
    """The teacher's user turn for a richness level. `demo` is the regen context (a response the
    model produced while conditioned on the solution, or another successful rollout)."""
    if richness not in RICHNESS:
        raise ValueError(f"unknown richness {richness!r}: use one of {', '.join(RICHNESS)}")
    context = {
        "none": None,
        "answer": answer,
        "solution": solution,
        "solution_nothink": strip_think(solution),
        "regen": demo,
    }[richness]
    student = student_user_turn(templates.student, problem)
    if context is None:
        return student
    template = templates.teacher_answer if richness == "answer" else templates.teacher_solution
    return fill(template, student=student, answer=context, solution=context)


def chat_prompt(tokenizer, user_turn: str, chat_kwargs: dict | None = None) -> str:
    messages = [{"role": "user", "content": user_turn}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **(chat_kwargs or {}))


def prompt_ids(tokenizer, user_turn: str, chat_kwargs: dict | None = None) -> list[int]:
    return tokenizer(chat_prompt(tokenizer, user_turn, chat_kwargs), add_special_tokens=False)["input_ids"]
