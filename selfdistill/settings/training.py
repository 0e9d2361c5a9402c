"""How every method trains: the LoRA adapter (`lora`), full fine-tuning and ranks (`training`),
and where the rollout methods' rollouts come from (`rollouts`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from selfdistill.settings.core import Constraint, Positive, PositiveInt, Probability


@dataclass(frozen=True, kw_only=True)
class LoraConfig:
    """`lora`: the adapter every method trains (with `training.finetune: lora`)."""

    r: PositiveInt
    """the adapter's rank"""
    alpha: Positive
    """LoRA's scaling numerator (the update is scaled by alpha / r)"""
    dropout: Probability
    """dropout on the adapter's input"""
    target_modules: Annotated[tuple[str, ...], Constraint(minItems=1)]
    """layer names (the config check refuses a name no layer of the model has)"""


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """`training`: how every method trains (optional; defaults: a LoRA adapter, no gradient checkpointing)."""

    finetune: Literal["lora", "full"] = "lora"
    """lora: train the adapter under `lora`; full: every weight (the output directory then holds the whole model)"""
    gradient_checkpointing: bool = False
    """recompute activations in backward: less memory, ~30% more compute"""
    loss_chunk: PositiveInt = 1024
    """completion positions whose logits exist at once in the losses: memory bounded by the chunk, not the
    response length"""
    processes: PositiveInt = 1
    """training processes (ranks) per job, one per GPU: > 1 starts them with srun inside a SLURM job, else with
    `accelerate launch`, the model sharded by FSDP2 and the rollouts split between the ranks (give
    resources.train_sft / train_rollouts the same number of GPUs)"""

    @staticmethod
    def check(config: dict, error) -> None:
        processes = config["training"]["processes"]
        if processes <= 1:
            return
        if config.get("onpolicy", {}).get("teacher_backend") == "vllm":
            error(
                "training.processes",
                processes,
                "needs one vLLM engine per rank with onpolicy.teacher_backend vllm, which is not supported",
                "set teacher_backend: hf or training.processes: 1",
            )
        for rule in ("train_sft", "train_rollouts"):
            gpus = int(config.get("resources", {}).get(rule, {}).get("gpu", 0))
            if gpus and gpus != processes:
                error(
                    f"resources.{rule}.gpu",
                    gpus,
                    f"differs from training.processes = {processes}: each rank needs its own GPU",
                    "set both to the same number",
                )


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    """`rollouts`: where the rollout methods' (onpolicy, grpo) rollouts come from."""

    backend: Literal["hf", "vllm"] | None = None
    """hf: the live student through transformers; vllm: an engine kept for the training job and told the new
    weights every step; null: the model's backend"""
    lora_sync: Literal["request", "merge"] = "request"
    """vllm + LoRA: serve the adapter under a new name, id and path every step (request), or load the merged
    weights in place (merge)"""
    gpu_memory_utilization: Annotated[float, Constraint(exclusiveMinimum=0, maximum=1)] = 0.3
    """vllm: the engine's share of the GPU it shares with training"""
    sleep: bool = True
    """vllm on a GPU: the engine sleeps (weights offloaded, KV cache freed) while the trainer steps"""
    importance_sampling: Literal["token", "none"] = "token"
    """token: weight every token's loss by min(p_trainer / p_engine, is_threshold), as the paper's
    rollout_is=token; rollouts from an engine only"""
    is_threshold: Annotated[float, Constraint(exclusiveMinimum=1)] = 2.0
    """the truncation of those weights"""

    @staticmethod
    def check(config: dict, error) -> None:
        from selfdistill.grid import ROLLOUT_METHODS

        rollouts, training = config["rollouts"], config["training"]
        vllm = [name for name, m in config["models"].items() if (rollouts["backend"] or m["backend"]) == "vllm"]
        if not vllm or not any(m in config["methods"] for m in ROLLOUT_METHODS):
            return
        if training["processes"] > 1 and rollouts["lora_sync"] == "merge":
            error(
                "rollouts.lora_sync",
                "merge",
                "would merge the adapter into weights sharded across training.processes ranks",
                "use lora_sync: request (each rank's engine serves the gathered adapter)",
            )
        onpolicy_vllm_teacher = "onpolicy" in config["methods"] and config["onpolicy"]["teacher_backend"] == "vllm"
        if onpolicy_vllm_teacher and rollouts["sleep"]:
            error(
                "rollouts.sleep",
                True,
                "puts the rollout engine to sleep while the trainer steps, and onpolicy.teacher_backend vllm scores "
                "the frozen teacher through that engine during the steps (its weights offloaded, KV cache freed)",
                "set rollouts.sleep: false (the engine keeps its memory share), or onpolicy.teacher_backend: hf",
            )
        weights_change = training["finetune"] == "full" or rollouts["lora_sync"] == "merge"
        if onpolicy_vllm_teacher and weights_change:
            error(
                "onpolicy.teacher_backend",
                "vllm",
                "scores the frozen teacher with the rollout engine's base "
                "weights, which the student's replace here (full fine-tuning, or rollouts.lora_sync: merge); a "
                "second engine would double the GPU memory",
                "set onpolicy.teacher_backend: hf, or train a LoRA adapter with rollouts.lora_sync: request",
            )
