"""Section `models.<name>` and the checks on models that need no model file (selfdistill.facts
checks the config against what a model's files say)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from selfdistill.settings.core import Constraint, NonNegative, NonNegativeInt, Partial, TopP


@dataclass(frozen=True, kw_only=True)
class SamplingOverride:
    """A model's own sampling: the keys it sets replace those of every section that samples
    for evaluation or as data (the eval sets, the teacher, Table 1)."""

    temperature: NonNegative
    """sampling temperature (0: greedy)"""
    top_p: TopP
    """nucleus sampling: the smallest set of tokens with this probability"""
    top_k: NonNegativeInt
    """the k most likely tokens only (0 = off)"""


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """`models.<name>`: a model under study (the student, and its own teacher)."""

    source: Annotated[str, Constraint(minLength=1)]
    """'toy' (built by the workflow), a hub id or a local path"""
    backend: Literal["hf", "vllm"] = "hf"
    """what generates (evaluation, teacher traces): hf (transformers) or vllm"""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """the weights' dtype (generation and training)"""
    chat_kwargs: dict = field(default_factory=dict)
    """extra chat-template arguments, e.g. {enable_thinking: false}"""
    lora: Literal["request", "merge"] = "request"
    """vllm: serve adapters with LoRARequest, or merge them first"""
    vllm: dict = field(default_factory=dict)
    """vllm.LLM engine arguments, e.g. gpu_memory_utilization, max_model_len"""
    sampling: Annotated[dict, Partial(SamplingOverride)] = field(default_factory=dict)
    """this model's temperature / top_p / top_k, e.g. Qwen3's recommended sampling with thinking off. They
    replace the eval sets', the teacher's and Table 1's (each job logs what it replaced); training
    rollouts (onpolicy, grpo) never use them: their temperature is part of the loss (logits /
    temperature), so they sample as their own section says, and training jobs do not receive this key"""

    @staticmethod
    def check(config: dict, error) -> None:
        for name, model in config["models"].items():
            if "toy_pretrain" in model and model["source"] != "toy":
                error(f"models.{name}.toy_pretrain", model["toy_pretrain"], "applies to toy models only", "remove it")
            if model["source"] == "toy" and "toy_pretrain" not in config:
                error(
                    f"models.{name}.source", "toy", "needs a `toy_pretrain:` block", "add one (see config/config.yaml)"
                )
            elif is_missing_path(model["source"]):
                error(f"models.{name}.source", model["source"], "is a path that does not exist", "fix it")


def is_missing_path(source: str) -> bool:
    """A source written as a path (./…, /…) that does not exist."""
    return source.startswith((".", "/")) and not Path(source).exists()


# Keys of `models.<name>` that a job of each kind does not read: the toy pretraining override is the
# pretraining rule's alone; `sampling` reaches only what samples for evaluation or as data.
NOT_READ = {"generation": ("toy_pretrain",), "training": ("toy_pretrain", "sampling")}


def model_section(config: dict, model: str, job: str = "generation") -> dict:
    """The `models.<name>` slice a model job of kind `job` (generation, training) gets: only the
    keys it reads, so an edit of another key re-runs none of its jobs."""
    return {k: v for k, v in config["models"][model].items() if k not in NOT_READ[job]}
