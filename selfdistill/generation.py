"""Generate, grade and measure: the per-sample table shared by teacher traces and evaluation."""

from __future__ import annotations

import pandas as pd

from selfdistill import epistemic, prompts
from selfdistill.backends import Sampling
from selfdistill.grading import grade_responses


def generate_table(backend, problems: pd.DataFrame, user_turns: list[str], sampling: Sampling, grading: dict,
                   chat_kwargs: dict | None = None, desc: str = "generate") -> pd.DataFrame:
    """One row per (problem, sample): the response, its completion token ids, grade and epistemic metrics."""
    tok = backend.tokenizer
    prompt_ids = [prompts.prompt_ids(tok, u, chat_kwargs) for u in user_turns]
    completions = backend.generate(prompt_ids, sampling, desc=desc)
    golds = problems["answer"].tolist()
    grades = grade_responses(
        [c.text for c in completions],
        [golds[c.prompt_index] for c in completions],
        workers=grading["workers"],
        timeout=grading["timeout_s"],
    )
    rows = []
    for c, g in zip(completions, grades):
        n_tokens = len(c.token_ids)
        count = epistemic.substring_count(c.text)
        truncated = c.finish_reason == "length"
        rows.append(
            {
                "problem_id": problems["problem_id"].iloc[c.prompt_index],
                "sample": c.sample,
                "response": c.text,
                "token_ids": c.token_ids,
                "n_tokens": n_tokens,
                "finish_reason": c.finish_reason,
                "truncated": truncated,
                "extracted": g["extracted"],
                # A response cut off by the token budget is wrong, whatever it boxed on the way.
                "correct": g["correct"] and not truncated,
                "grade_status": g["grade_status"],
                "epistemic_count": count,
                "epistemic_words": epistemic.word_count(c.text),
                "epistemic_density": epistemic.density_per_1k(count, n_tokens),
            }
        )
    return pd.DataFrame(rows)
