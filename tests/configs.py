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


def run_rollouts(model, tok, subset, method, richness, ablation, hp, seed, grading=GRADING, loss_chunk=5, **kwargs):
    """What scripts/train_rollouts.py does with transformers rollouts: the method's objective, made
    before training, then the loop (losses over 5 completion positions at a time, to exercise it)."""
    from selfdistill import distributed
    from selfdistill.backends.hf import HFBackend

    objective = make_objective(method, model, tok, hp, richness, ablation, TEMPLATES)
    rollouts = HFBackend(model, tok, hp.generation_batch_size, ranks=distributed)
    return train_on_rollouts(
        model, tok, subset, objective, hp, TEMPLATES, grading, seed, rollouts, loss_chunk, **kwargs
    )


def dataset(spec: dict):
    """A dataset section from a partial spec, with its declared defaults (as the workflow fills them)."""
    from selfdistill.config import with_defaults
    from selfdistill.settings.data import DatasetConfig

    return build(DatasetConfig, with_defaults({"datasets": {"d": dict(spec)}})["datasets"]["d"])
