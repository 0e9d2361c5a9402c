"""What samples for evaluation or as data: the teacher's traces (`teacher`), the eval sets
(`eval_sets.<name>`), and how generation jobs run (`generation`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from selfdistill.settings.core import Name, NonNegative, NonNegativeInt, PositiveInt, TopP, optional


@dataclass(frozen=True, kw_only=True)
class TeacherConfig:
    """`teacher`: the offline teacher's traces, the model answering with a richness-dependent
    context in its prompt (what SFT trains on, and what claim (a) measures)."""

    n_samples: PositiveInt
    """traces per problem"""
    temperature: NonNegative
    """sampling temperature (0: greedy)"""
    top_p: TopP
    """nucleus sampling: the smallest set of tokens with this probability"""
    top_k: NonNegativeInt = 0
    """the k most likely tokens only (0 = off)"""
    max_new_tokens: PositiveInt
    """the response budget; a response cut off here has no answer"""
    keep: Literal["correct", "all"]
    """correct: SFT trains on correct traces only; all: on every trace"""


@dataclass(frozen=True, kw_only=True)
class EvalSetConfig:
    """`eval_sets.<name>`: problems to evaluate every variant (or the base model) on, and how to sample."""

    dataset: Name
    """a dataset under `datasets`"""
    split: str
    """a split of the dataset, or 'subset': the variant's training problems"""
    n_problems: PositiveInt
    """the first n problems of the split"""
    n_samples: PositiveInt
    """samples per problem (avg@n, pass@n)"""
    temperature: NonNegative
    """sampling temperature (0: greedy)"""
    top_p: TopP
    """nucleus sampling: the smallest set of tokens with this probability"""
    top_k: NonNegativeInt = 0
    """the k most likely tokens only (0 = off)"""
    max_new_tokens: PositiveInt
    """the response budget; a response cut off here is graded wrong (`truncated`)"""
    seed: NonNegativeInt
    """the sampling seed (the same samples for every variant on the same problems)"""
    variants: Literal["all", "base"] = "all"
    """evaluate every variant, or the base model only (e.g. the gate's in-domain sets)"""
    epistemic: Literal["free", "banned", "forced"] = "free"
    """banned: sample without the epistemic words' token ids (the set E; NoWait, arXiv 2506.08343); forced: the
    model may not end its thinking (</think>, or EOS) before it has said one (s1-style budget forcing;
    transformers backend): how much accuracy rests on verbalized checking, on any model"""

    @staticmethod
    def check(config: dict, error) -> None:
        for name, eval_set in config["eval_sets"].items():
            if eval_set["dataset"] not in config["datasets"]:
                error(
                    f"eval_sets.{name}.dataset", eval_set["dataset"], "is not under datasets", "add it or fix the name"
                )


@dataclass(frozen=True, kw_only=True)
class GenerationConfig:
    """`generation`: how generation jobs run (not what they sample)."""

    batch_size: PositiveInt
    """sequences per generate() call (transformers backend)"""
    shard_problems: PositiveInt | None = optional()
    """problems per saved shard: a re-run after a crash skips finished shards"""
