"""Section `prompts`: the user turns, and the check that each has its placeholders."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from selfdistill.settings.core import Constraint

# Which placeholders each template takes; `{name}` is a placeholder, `\boxed{}` and `{5}` are text.
PLACEHOLDERS = {
    "student": {"problem"},
    "teacher_answer": {"student", "answer"},
    "teacher_solution": {"student", "solution"},
}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]\w*)\}")


@dataclass(frozen=True, kw_only=True)
class Prompts:
    """`prompts`: the user turns (the chat template and its settings are the model's). The teacher's
    turn holds the student's, then the context."""

    student: Annotated[str, Constraint(pattern=r"\{problem\}")]
    """the bare question: {problem}"""
    teacher_answer: Annotated[str, Constraint(pattern=r"\{answer\}")]
    """the teacher with the answer in context: {student} (the student's turn), {answer}"""
    teacher_solution: Annotated[str, Constraint(pattern=r"\{solution\}")]
    """the teacher with a solution (or a response) in context: {student}, {solution}"""

    @staticmethod
    def check(config: dict, error) -> None:
        templates = config["prompts"]
        for template, allowed in PLACEHOLDERS.items():
            used = set(_PLACEHOLDER.findall(templates[template]))
            if used - allowed:
                error(
                    f"prompts.{template}",
                    templates[template],
                    f"has unknown placeholder(s) {sorted(used - allowed)}, which would be sent literally",
                    f"use only {', '.join('{' + a + '}' for a in sorted(allowed))}",
                )
            if allowed - used:
                error(
                    f"prompts.{template}",
                    templates[template],
                    f"lacks {', '.join('{' + a + '}' for a in sorted(allowed - used))}"
                    + (" (the teacher would never see the question)" if "student" in allowed - used else ""),
                    "add the missing placeholder(s)",
                )
