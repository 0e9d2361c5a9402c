"""Section `table1`: the paper's Table 1 (responses under each context on problems the base model
finds hard), run when a config has it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from selfdistill.settings.core import (
    Constraint,
    Name,
    NonNegative,
    NonNegativeInt,
    PositiveInt,
    Richness,
    TopP,
    choices,
)


@dataclass(frozen=True, kw_only=True)
class Table1Sampling:
    """`table1.sampling`: how each problem is sampled, under every context."""

    n_samples: PositiveInt
    """samples per problem and context"""
    temperature: NonNegative
    """sampling temperature (0: greedy)"""
    top_p: TopP
    """nucleus sampling: the smallest set of tokens with this probability"""
    top_k: NonNegativeInt = 0
    """the k most likely tokens only (0 = off)"""
    max_new_tokens: PositiveInt
    """the response budget"""
    seed: int
    """the sampling seed"""


@dataclass(frozen=True, kw_only=True)
class Table1Config:
    """`table1`: the paper's Table 1: responses under each context on problems the base model finds hard."""

    dataset: Name
    """a dataset under `datasets`"""
    split: str
    """the split the candidates come from"""
    n_candidates: PositiveInt
    """problems sampled unguided; the first n_problems in correct_range are kept"""
    n_problems: PositiveInt
    """problems kept (the first candidates in correct_range)"""
    correct_range: Annotated[tuple[NonNegativeInt, ...], Constraint(minItems=2, maxItems=2)]
    """[low, high] correct unguided samples of a kept problem"""
    richness: choices(Richness)
    """the contexts besides none (regen needs solution)"""
    sampling: Table1Sampling

    @staticmethod
    def check(config: dict, error) -> None:
        t1 = config["table1"]
        if t1["dataset"] not in config["datasets"]:
            error("table1.dataset", t1["dataset"], "is not under datasets", "add it or fix the name")
        if t1["correct_range"][1] > t1["sampling"]["n_samples"]:
            error("table1.correct_range", t1["correct_range"], "exceeds table1.sampling.n_samples", "lower it")
        if "regen" in t1["richness"] and "solution" not in t1["richness"]:
            error(
                "table1.richness",
                t1["richness"],
                "has regen but not solution (regen's context comes from it)",
                "add solution",
            )
        if t1["correct_range"][0] > t1["correct_range"][1]:
            error("table1.correct_range", t1["correct_range"], "is an empty range", "use [low, high] with low <= high")
