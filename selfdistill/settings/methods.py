"""The training methods' sections (`sft`, `onpolicy`, `grpo`), each with its cross-field checks.

A method's section is required only when `methods` lists it. Besides its hyperparameters (the
class), a section holds grid keys that decide which jobs exist, not what a job computes: a method
with a teacher has `ablations`, a rollout method the `eval_set` its checkpoints are evaluated on.
grid.METHODS names each method's class here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from selfdistill.settings.core import (
    Ablation,
    Constraint,
    Name,
    NonNegativeInt,
    Positive,
    PositiveInt,
    Probability,
    TopP,
    build,
    choices,
)


@dataclass(frozen=True, kw_only=True)
class TeacherAxes:
    """The grid key of a method with a teacher."""

    ablations: choices(Ablation)
    """standard | preserve | suppress: the controlled uncertainty ablation (each a job of its own)"""


@dataclass(frozen=True, kw_only=True)
class CurveEvalSet:
    """The grid key of a rollout method."""

    eval_set: Name
    """the eval set the checkpoints are evaluated on (training curves)"""


# ---- offline self-distillation ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SFTConfig:
    """`sft`: offline self-distillation, SFT of the student (bare question) on the teacher's traces."""

    select_per_problem: PositiveInt
    """traces kept per problem by the preserve / suppress trace selection"""
    lr: Positive
    """peak; decays linearly to 0"""
    epochs: PositiveInt
    """passes over the kept traces"""
    batch_size: PositiveInt
    """examples per optimizer step"""
    micro_batch_size: PositiveInt
    """examples per forward/backward (gradient accumulation keeps the step)"""
    max_grad_norm: Positive
    """gradients are clipped to this norm"""
    checkpoint_every: NonNegativeInt = 0
    """save resumable training state every k steps (0 = never)"""

    @staticmethod
    def check(config: dict, error) -> None:
        sft = config["sft"]
        if sft["batch_size"] % sft["micro_batch_size"]:
            error(
                "sft.micro_batch_size",
                sft["micro_batch_size"],
                f"does not divide sft.batch_size = {sft['batch_size']} (a step is whole micro-batches)",
                "change one of them",
            )


# ---- the rollout methods ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RolloutConfig:
    """What every rollout method shares."""

    steps: PositiveInt
    """optimizer steps (each on a freshly sampled batch)"""
    prompts_per_step: PositiveInt
    """training problems per step"""
    n_rollouts: PositiveInt
    """rollouts sampled per problem (a GRPO group)"""
    temperature: Positive
    """rollout sampling; the losses use logits / temperature"""
    top_p: TopP
    """rollout nucleus sampling"""
    top_k: NonNegativeInt = 0
    """rollout top-k (0 = off)"""
    max_new_tokens: PositiveInt
    """rollout budget; a cut-off rollout gets reward 0"""
    lr: Positive
    """AdamW learning rate (after warm-up)"""
    warmup_steps: NonNegativeInt = 0
    """the learning rate rises linearly over these steps, then stays (verl's lr_warmup_steps)"""
    mini_batch_prompts: NonNegativeInt = 0
    """prompts per optimizer step (verl's ppo_mini_batch_size); 0: one optimizer step per sampled batch"""
    micro_batch_size: PositiveInt
    """rollouts per forward/backward (gradient accumulation keeps the step)"""
    generation_batch_size: PositiveInt
    """sequences per generate() call (transformers rollouts)"""
    max_grad_norm: Positive
    """gradients are clipped to this norm"""
    checkpoint_every: NonNegativeInt
    """save a checkpoint (evaluated by its own job, for the training curves) and resumable state every k steps;
    0 = never"""


def check_curve_eval_set(config: dict, method: str, error) -> None:
    """A rollout method's checkpoints are evaluated on a fixed eval set."""
    eval_set = config[method]["eval_set"]
    if eval_set not in config["eval_sets"]:
        error(f"{method}.eval_set", eval_set, "is not under eval_sets", "add it or fix the name")
    elif config["eval_sets"][eval_set]["split"] == "subset":
        error(f"{method}.eval_set", eval_set, "uses split 'subset'", "pick a fixed split such as ood")


@dataclass(frozen=True, kw_only=True)
class OnPolicyConfig(RolloutConfig):
    """`onpolicy`: SDPO-style self-distillation, the student's rollouts scored by the same model with
    the context in its prompt."""

    alpha: Probability
    """generalized JSD (SDPO's convention): 0 forward KL(teacher‖student), 1 reverse KL, 0.5 JSD"""
    support: Literal["full", "topk", "teacher_topk", "sampled"]
    """full vocabulary; student's or teacher's top-k + tail; sampled token"""
    topk: PositiveInt
    """k of the top-k supports"""
    teacher: Literal["frozen", "ema", "live"]
    """frozen (the initial model, adapter disabled) | ema (of the student) | live (the student itself)"""
    ema_rate: Probability
    """EMA teacher: weight of the student's new weights per step"""
    teacher_backend: Literal["hf", "vllm"] = "hf"
    """vllm: the frozen teacher scores through a vLLM engine (prompt_logprobs); needs teacher frozen, support
    teacher_topk, temperature 1, a vllm-backed model"""
    is_clip: Annotated[float, Constraint(exclusiveMinimum=1)] | None = None
    """weight each token's loss by min(p_now / p_sampled, is_clip): the later mini-batch steps of a batch are
    slightly off-policy (SDPO's is_clip)"""

    @staticmethod
    def check(config: dict, error) -> None:
        onpolicy = config["onpolicy"]
        if onpolicy["support"] == "sampled" and onpolicy["alpha"] != 1:
            error(
                "onpolicy.alpha",
                onpolicy["alpha"],
                "is ignored by support 'sampled', which estimates reverse KL from the sampled token alone",
                "set onpolicy.alpha: 1, or a support over many ids (full, topk)",
            )
        if (
            onpolicy["alpha"] == 1
            and onpolicy["support"] != "sampled"
            and "suppress" in onpolicy["ablations"]
            and "onpolicy" in config["methods"]
        ):
            error(
                "onpolicy.alpha",
                1,
                "makes the loss reverse KL(student‖target), infinite under the `suppress` "
                "ablation (its target has no mass on the epistemic ids, where the student has some)",
                "use alpha < 1, or drop suppress from onpolicy.ablations",
            )
        if onpolicy["teacher_backend"] == "vllm":
            needs = {"teacher": "frozen", "support": "teacher_topk", "temperature": 1.0}
            for key, value in needs.items():
                if onpolicy[key] != value:
                    error(
                        f"onpolicy.{key}",
                        onpolicy[key],
                        "does not fit teacher_backend vllm, which scores the frozen initial "
                        "model's top-k log-probs at temperature 1",
                        f"set onpolicy.{key}: {value} or teacher_backend: hf",
                    )
            for name, model in config["models"].items():
                if model["backend"] != "vllm":
                    error(
                        f"models.{name}.backend",
                        model["backend"],
                        "does not fit onpolicy.teacher_backend vllm, which needs vllm-backed models",
                        f"set models.{name}.backend: vllm or onpolicy.teacher_backend: hf",
                    )


@dataclass(frozen=True, kw_only=True)
class GRPOConfig(RolloutConfig):
    """`grpo`: the paper's contrast, a verifiable 0/1 reward and a group-relative advantage, no teacher."""

    n_rollouts: Annotated[int, Constraint(minimum=2)]
    """rollouts per problem: a group needs two for a relative advantage"""
    clip_low: Probability
    """the ratio is clipped to [1 - clip_low, 1 + clip_high]"""
    clip_high: Annotated[float, Constraint(minimum=0)]
    """the upper clip (DAPO's clip-higher: above clip_low)"""
    scale_rewards: bool
    """divide the advantage by the group's reward std"""
    updates_per_batch: PositiveInt
    """optimizer steps per sampled batch (> 1: the clip matters)"""


def settings_class(method: str) -> type:
    """The hyperparameters class of `method`, as grid.METHODS names it."""
    from selfdistill.grid import METHODS

    return globals()[METHODS[method].settings]


def hyperparameters(config: dict, method: str):
    """A method's section of a checked config as its typed hyperparameters: without its grid keys
    (what the training rules pass, too)."""
    from selfdistill.grid import NOT_HYPERPARAMETERS

    section = {k: v for k, v in config[method].items() if k not in NOT_HYPERPARAMETERS}
    return build(settings_class(method), section)
