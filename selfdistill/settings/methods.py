"""The training methods' sections (`sft`, `onpolicy`, `grpo`), each with its cross-field checks.

A method's section is required only when `methods` lists it. Besides its hyperparameters (the
class), a section holds grid keys that decide which jobs exist, not what a job computes: a method
with a teacher has `ablations`, a rollout method the `eval_set` its checkpoints are evaluated on.
grid.METHODS names each method's class here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from selfdistill.settings.core import (
    Ablation,
    Constraint,
    Name,
    NonNegative,
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
    """standard | preserve | suppress: the uncertainty ablation of each context teacher (each a job of its
    own); the no-context control (richness none) runs standard only"""


@dataclass(frozen=True, kw_only=True)
class CurveEvalSet:
    """The grid key of a rollout method."""

    eval_set: Name
    """the eval set the checkpoints are evaluated on (training curves)"""


@dataclass(frozen=True, kw_only=True)
class PerCoverage:
    """The per-coverage settings of a rollout method."""

    by_coverage: dict[Annotated[str, Constraint(pattern="^([0-9]+|full)$")], dict] = field(default_factory=dict)
    """this section's training settings for some coverages, over the rest, e.g. the paper's full-data runs:
    {full: {prompts_per_step: 256, mini_batch_prompts: 128}}; not steps or checkpoint_every (they decide which
    checkpoint evaluations exist)"""


def check_by_coverage(config: dict, method: str, error) -> None:
    """`by_coverage` may not change the keys that decide which jobs exist (grid.PER_GRID_KEYS)."""
    from selfdistill.grid import PER_GRID_KEYS

    for coverage, overrides in config[method]["by_coverage"].items():
        for key in sorted(set(overrides) & set(PER_GRID_KEYS)):
            error(
                f"{method}.by_coverage.{coverage}.{key}",
                overrides[key],
                "cannot be set per coverage (it decides which checkpoint evaluations exist)",
                f"set {method}.{key} in the section itself",
            )


# ---- offline self-distillation ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SFTConfig:
    """`sft`: offline self-distillation, SFT of the student (bare question) on the teacher's traces."""

    select_per_problem: PositiveInt
    """traces kept per problem by the preserve / suppress trace selection"""
    lr: Positive
    """peak; decays linearly to 0"""
    weight_decay: NonNegative = 0.0
    """AdamW's decoupled weight decay on every trainable weight (verl's actor: 0.01)"""
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
    max_total_tokens: Annotated[int, Constraint(minimum=2)] | None = None
    """prompt + response cap per rollout, on top of max_new_tokens (verl's rollout max_model_len: 18,944 for
    SDPO, 10,240 for GRPO in the paper's code); null: max_new_tokens alone"""
    lr: Positive
    """AdamW learning rate (after warm-up)"""
    weight_decay: NonNegative = 0.0
    """AdamW's decoupled weight decay on every trainable weight (verl's actor: 0.01)"""
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
    teacher_prompt_max_tokens: PositiveInt | None = None
    """right-truncate each teacher prompt to this many tokens (verl's max_reprompt_len, truncation right);
    prompts are also cut so prompt + completion fit the model's context; the step log counts truncations"""

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
    clip_ratio_c: NonNegative = 3.0
    """dual clip (verl's clip_ratio_c, > 1): with a negative advantage a token's loss is at most
    -A x clip_ratio_c; 0: off"""
    scale_rewards: bool
    """divide the advantage by the group's reward std (verl's norm_adv_by_std_in_grpo; the paper's baseline:
    false)"""
    updates_per_batch: PositiveInt
    """optimizer steps per sampled batch (> 1: the clip matters)"""

    @staticmethod
    def check(config: dict, error) -> None:
        if 0 < config["grpo"]["clip_ratio_c"] <= 1:
            error(
                "grpo.clip_ratio_c",
                config["grpo"]["clip_ratio_c"],
                "would bound the loss of a negative advantage below the unclipped one (verl requires > 1)",
                "use a value above 1 (verl's 3.0), or 0 for no dual clip",
            )


def settings_class(method: str) -> type:
    """The hyperparameters class of `method`, as grid.METHODS names it."""
    from selfdistill.grid import METHODS

    return globals()[METHODS[method].settings]


def hyperparameters(config: dict, method: str, coverage=None):
    """A method's section of a checked config as its typed hyperparameters at `coverage`
    (grid.hyperparameters: what the training rules pass, too)."""
    from selfdistill import grid

    return build(settings_class(method), grid.hyperparameters(config, method, coverage))
