"""Teacher traces: the model sampling with a richness-dependent context in its prompt."""

from __future__ import annotations

import logging

import pandas as pd

from selfdistill import prompts
from selfdistill.generation import generate_table

log = logging.getLogger(__name__)


def distinct_problems(subset: pd.DataFrame) -> pd.DataFrame:
    """A coverage subset without its batch-filling repeats."""
    return subset.drop_duplicates("problem_id").reset_index(drop=True)


def demonstrations(traces: pd.DataFrame) -> dict:
    """problem_id -> one correct response (the first), used as the regen context."""
    correct = traces[traces["correct"]].sort_values(["problem_id", "sample"])
    return correct.groupby("problem_id")["response"].first().to_dict()


def teacher_table(
    backend, subset, richness, templates, sampling, grading, keep="correct", chat_kwargs=None, demos=None, **shards
):
    """Teacher traces per distinct problem; `shards` as in `generate_table`."""
    problems = distinct_problems(subset)
    if richness == "regen":
        missing = ~problems["problem_id"].isin(demos)
        if missing.any():
            log.warning(
                "regen: %d of %d problems have no correct solution-guided response; skipped",
                missing.sum(),
                len(problems),
            )
        problems = problems[~missing].reset_index(drop=True)
    turns = [
        prompts.teacher_user_turn(
            templates, richness, p.problem, p.answer, p.solution, (demos or {}).get(p.problem_id, "")
        )
        for p in problems.itertuples()
    ]
    table = generate_table(
        backend, problems, turns, sampling, grading, chat_kwargs, desc=f"teacher {richness}", **shards
    )
    table["kept"] = table["correct"] if keep == "correct" else True
    log.info(
        "teacher %s: accuracy %.3f, mean tokens %.1f, mean epistemic count %.2f, kept %d/%d",
        richness,
        table["correct"].mean(),
        table["n_tokens"].mean(),
        table["epistemic_count"].mean(),
        table["kept"].sum(),
        len(table),
    )
    return table
