"""Typed config sections for tests, from config/config.yaml (checked, defaults filled), and the
rollout training entry point as the training script calls it."""

from dataclasses import replace

from selfdistill.config import load_config
from selfdistill.settings.core import build
from selfdistill.settings.grading import GradingConfig
from selfdistill.settings.methods import hyperparameters as method_hyperparameters
from selfdistill.settings.prompts import Prompts
from selfdistill.settings.training import LoraConfig, TrainingConfig
from selfdistill.train.objectives import make_objective
from selfdistill.train.rollouts import train_on_rollouts

CONFIG = load_config()
TEMPLATES = build(Prompts, CONFIG["prompts"])
GRADING = GradingConfig(workers=1, timeout_s=10, max_answer_chars=1000)
LORA = replace(build(LoraConfig, CONFIG["lora"]), r=4)
TRAINING = build(TrainingConfig, CONFIG["training"])


def hyperparameters(method: str, **overrides):
    """A method's section of the default config as its typed hyperparameters, with overrides."""
    return replace(method_hyperparameters(CONFIG, method), **overrides)


def rollout_hp(method: str, **overrides):
    """A rollout method's hyperparameters, small enough for the tiny model."""
    small = {
        "steps": 3,
        "prompts_per_step": 1,
        "n_rollouts": 4,
        "max_new_tokens": 12,
        "micro_batch_size": 4,
        "generation_batch_size": 16,
        "checkpoint_every": 0,
    }
    return hyperparameters(method, **{**small, **overrides})


def sft_hp(**overrides):
    return hyperparameters("sft", **overrides)


def run_rollouts(
    model, tok, subset, method, richness, ablation, hp, seed, grading=GRADING, loss_chunk=5, rollouts=None, **kwargs
):
    """What scripts/train_rollouts.py does (by default with transformers rollouts): the method's
    objective, made before training, then the loop (losses over 5 completion positions at a time,
    to exercise it). `rollouts`: another rollout engine (vLLM, with its `engine` settings in kwargs)."""
    from selfdistill import distributed
    from selfdistill.backends.hf import HFBackend

    objective = make_objective(method, model, tok, hp, richness, ablation, TEMPLATES)
    rollouts = rollouts or HFBackend(model, tok, hp.generation_batch_size, ranks=distributed)
    return train_on_rollouts(
        model, tok, subset, objective, hp, TEMPLATES, grading, seed, rollouts, loss_chunk, **kwargs
    )


def vllm_rollout_engine(model_dir, student, lora_sync="request", sleep=True, max_logprobs=16, max_model_len=256):
    """A vLLM rollout engine for the tiny model, as the training script makes one, and its settings."""
    from selfdistill.backends import make_rollout_engine
    from selfdistill.settings.models import ModelConfig
    from selfdistill.settings.training import EngineConfig

    model = ModelConfig(
        source=model_dir,
        backend="vllm",
        dtype="float32",
        chat_kwargs={},
        lora="request",
        vllm={"max_model_len": max_model_len, "enforce_eager": True},
        sampling={},
    )
    engine = EngineConfig(
        backend="vllm",
        lora_sync=lora_sync,
        gpu_memory_utilization=0.1,
        sleep=sleep,
        importance_sampling="token",
        is_threshold=2.0,
    )
    rollouts = make_rollout_engine(engine, model, student, None, model_dir, 64, 0, max_logprobs=max_logprobs)
    return rollouts, engine


def dataset(spec: dict):
    """A dataset section from a partial spec, with its declared defaults (as the workflow fills them)."""
    from selfdistill.config import with_defaults
    from selfdistill.settings.data import DatasetConfig

    return build(DatasetConfig, with_defaults({"datasets": {"d": dict(spec)}})["datasets"]["d"])


def ended_before_a_word(backend, prompt, epistemic: str) -> tuple[int, int]:
    """32 samples of `prompt` (the forcing tests of both backends): (completions that ended, by EOS
    or </think>, before any epistemic id, completions that stopped at all)."""
    from selfdistill.backends import Sampling, end_of_thinking_ids, epistemic_ids

    ends, words = set(end_of_thinking_ids(backend.tokenizer)), set(epistemic_ids(backend.tokenizer))
    sampling = Sampling(n=32, temperature=1.0, max_new_tokens=60, seed=0, epistemic=epistemic)
    bad = stopped = 0
    for c in backend.generate(prompt, sampling):
        first_end = next((i for i, t in enumerate(c.token_ids) if t in ends), None)
        first_word = next((i for i, t in enumerate(c.token_ids) if t in words), None)
        bad += first_end is not None and (first_word is None or first_word > first_end)
        stopped += c.finish_reason == "stop"
    return bad, stopped
