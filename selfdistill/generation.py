"""Generate, grade and measure: the per-sample table shared by teacher traces and evaluation."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd

from selfdistill import epistemic, prompts
from selfdistill.backends import Sampling
from selfdistill.grading import grade_responses
from selfdistill.io import write_table
from selfdistill.jobs import claim_partial
from selfdistill.settings.generation import GenerationConfig
from selfdistill.settings.grading import GradingConfig

log = logging.getLogger(__name__)


TABLE_COLUMNS = [
    "problem_id",
    "sample",
    "response",
    "token_ids",
    "n_tokens",
    "finish_reason",
    "truncated",
    "extracted",
    "correct",
    "grade_status",
    "epistemic_count",
    "epistemic_words",
    "epistemic_density",
]


def generate_table(
    backend,
    problems: pd.DataFrame,
    user_turns: list[str],
    sampling: Sampling,
    grading: GradingConfig,
    chat_kwargs: dict | None = None,
    desc: str = "generate",
    shard_problems: int | None = None,
    shard_dir=None,
) -> pd.DataFrame:
    """One row per (problem, sample): the response, its completion token ids, grade and epistemic metrics.

    Every problem's samples are seeded by its row index (`Sampling.prompt_seed`), so the table does
    not depend on how it is split. With `shard_problems`, problems are generated in shards of that
    many; with `shard_dir` too, each finished shard is saved there and a re-run after a crash loads it
    instead of generating it again.
    """
    if not shard_problems or problems.empty:
        return _generate_table(backend, problems, user_turns, sampling, grading, chat_kwargs, desc, 0)
    parts = []
    for i, start in enumerate(range(0, len(problems), shard_problems)):
        path = Path(shard_dir) / f"shard{i:05d}.parquet" if shard_dir else None
        if path and path.exists():
            log.info("shard %d: reusing %s", i, path)
            parts.append(pd.read_parquet(path))
            continue
        end = start + shard_problems
        part = _generate_table(
            backend,
            problems.iloc[start:end].reset_index(drop=True),
            user_turns[start:end],
            sampling,
            grading,
            chat_kwargs,
            f"{desc} [shard {i}]",
            start,
        )
        if path:
            write_table(part, path, {"shard": i, "problems": [start, min(end, len(problems))]}, seed=sampling.seed)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def shard_dir_for(output) -> Path:
    """Where a job keeps its finished shards: beside its output, which Snakemake deletes on a re-run."""
    return Path(str(output) + ".shards")


def shards(output, generation: GenerationConfig, job_key: str) -> dict:
    """generate_table's shard arguments for a job writing `output` (no sharding if not configured).
    Shards left by a job with another key (other params, code or inputs) are discarded first."""
    if not generation.shard_problems:
        return {}
    return {"shard_problems": generation.shard_problems, "shard_dir": claim_partial(shard_dir_for(output), job_key)}


def finish_shards(output) -> None:
    shutil.rmtree(shard_dir_for(output), ignore_errors=True)


def _generate_table(backend, problems, user_turns, sampling, grading, chat_kwargs, desc, first) -> pd.DataFrame:
    """Rows for `problems`, which start at row `first` of the whole table (their seeds' index)."""
    tok = backend.tokenizer
    prompt_ids = [prompts.prompt_ids(tok, u, chat_kwargs) for u in user_turns]
    completions = backend.generate(prompt_ids, sampling, desc=desc, indices=range(first, first + len(prompt_ids)))
    golds = problems["answer"].tolist()
    grades = grade_responses([c.text for c in completions], [golds[c.prompt_index] for c in completions], grading)
    rows = []
    for c, g in zip(completions, grades, strict=True):
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
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)
