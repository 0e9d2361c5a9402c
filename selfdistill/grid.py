"""The experiment grid, in one place: the methods and what each needs, every output path and its
regex, and the enumeration of targets. Rules, summary, statistics, figures, benchmarks and tests
import it; it imports nothing heavy (planning the paper's 5,000-job DAG calls it per job).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """A training method: the one registry of methods (docs/methods.md, "Adding a method")."""

    rule: str  # the rule that trains it
    teacher: bool  # has a context-conditioned teacher: richness and ablation are axes
    rollouts: bool  # samples from the student while training: per-step rewards, checkpoint curves
    # Its hyperparameters' class in selfdistill/settings/methods.py (the config section `<method>:`),
    # by name: the grid imports no settings, so a job that only needs paths does not depend on them.
    settings: str


# In the order the findings report the methods with a teacher.
METHODS = {
    "onpolicy": Method(rule="train_rollouts", teacher=True, rollouts=True, settings="OnPolicyConfig"),
    "grpo": Method(rule="train_rollouts", teacher=False, rollouts=True, settings="GRPOConfig"),
    "sft": Method(rule="train_sft", teacher=True, rollouts=False, settings="SFTConfig"),
}
# Keys of a method's section that are not its hyperparameters: the grid axis of its ablations, the
# eval set its checkpoints are evaluated on (neither changes what a training job computes), and the
# per-coverage overrides (applied by `hyperparameters`).
NOT_HYPERPARAMETERS = ("ablations", "eval_set", "by_coverage")
# Keys `by_coverage` may not override: they decide which checkpoint evaluations exist.
PER_GRID_KEYS = ("steps", "checkpoint_every")
ROLLOUT_METHODS = tuple(m for m, spec in METHODS.items() if spec.rollouts)
RICHNESS = ("none", "answer", "solution", "solution_nothink", "regen")
RICHEST_FIRST = ("solution", "regen", "solution_nothink", "answer")
ABLATIONS = ("standard", "preserve", "suppress")

# Path templates (wildcards in braces). A variant is `base` (the untrained model; `base/c{c}_s{s}`
# for a coverage subset's own problems), a trained model `{method}/{richness}/{ablation}/c{c}_s{s}`,
# or one of its checkpoints `…/step{k}`.
DATA = "results/data/{dataset}.parquet"
SUBSET = "results/subsets/{dataset}/c{coverage}_s{seed}.parquet"
TEACHER = "results/{model}/teacher/{richness}/c{coverage}_s{seed}.parquet"
RUN = "{method}/{richness}/{ablation}/c{coverage}_s{seed}"
TRAIN = "results/{model}/train/" + RUN
EVAL = "results/{model}/eval/{variant}/{eval_set}.parquet"

_NAME = r"[A-Za-z0-9_.-]+"
_COVERAGE, _SEED = r"\d+|full", r"\d+"
_RUN = (
    rf"(?:{'|'.join(METHODS)})/(?:{'|'.join(RICHNESS)})/(?:{'|'.join(ABLATIONS)})"
    rf"/c(?:{_COVERAGE})_s(?:{_SEED})"
)
WILDCARDS = {
    "model": _NAME,
    "dataset": _NAME,
    "eval_set": _NAME,
    "method": "|".join(METHODS),
    "rollout_method": "|".join(ROLLOUT_METHODS),
    "richness": "|".join(RICHNESS),
    "ablation": "|".join(ABLATIONS),
    "coverage": _COVERAGE,
    "seed": _SEED,
    "variant": rf"base(?:/c(?:{_COVERAGE})_s(?:{_SEED}))?|{_RUN}(?:/step\d+)?",
}

_VARIANT = re.compile(
    rf"(?P<method>base|{'|'.join(METHODS)})(?:/(?P<richness>{'|'.join(RICHNESS)})/(?P<ablation>{'|'.join(ABLATIONS)}))?"
    rf"(?:/c(?P<coverage>{_COVERAGE})_s(?P<seed>{_SEED}))?(?:/step(?P<step>\d+))?"
)
PATTERNS = {
    "eval": re.compile(rf"results/(?P<model>{_NAME})/eval/{_VARIANT.pattern}/(?P<eval_set>{_NAME})\.parquet$"),
    "train": re.compile(
        rf"results/(?P<model>{_NAME})/train/(?P<method>{'|'.join(METHODS)})/(?P<richness>[a-z_]+)"
        rf"/(?P<ablation>[a-z]+)/c(?P<coverage>{_COVERAGE})_s(?P<seed>{_SEED})/\w+\.parquet$"
    ),
    "teacher": re.compile(
        rf"results/(?P<model>{_NAME})/teacher/(?P<richness>[a-z_]+)/c(?P<coverage>{_COVERAGE})"
        rf"_s(?P<seed>{_SEED})\.parquet$"
    ),
}


def parse_variant(variant: str) -> dict:
    """method (`base` or a method), richness, ablation, coverage, seed, step (None where absent)."""
    match = _VARIANT.fullmatch(variant)
    if not match:
        raise ValueError(f"{variant!r} is not a variant ({WILDCARDS['variant']})")
    return match.groupdict()


def parse_path(kind: str, path, full_coverage: int | None = None) -> dict:
    """Grid axes from an output path of `kind` (eval, train, teacher); coverage `full` becomes
    `full_coverage`, the training split's size. Absent axes are None (ablation: standard)."""
    match = PATTERNS[kind].search(str(path))
    if not match:
        raise ValueError(f"{path} does not look like a workflow output ({PATTERNS[kind].pattern})")
    axes = match.groupdict()
    if axes.get("coverage") == "full":
        if full_coverage is None:
            raise ValueError(f"{path}: coverage 'full' needs the training set's size (full_coverage)")
        axes["coverage"] = full_coverage
    for key in ("coverage", "seed", "step"):
        if key in axes:
            axes[key] = int(axes[key]) if axes[key] is not None else None
    if "ablation" in axes:
        axes["ablation"] = axes["ablation"] or "standard"
    return axes


# ---- enumeration --------------------------------------------------------------------------------


def method_cells(method: str, config: dict) -> list[tuple[str, str]]:
    """(richness, ablation) pairs a method runs; a method without a teacher runs once (none, standard).
    The uncertainty ablations reshape what a context teacher teaches; the no-context control (none: the
    model its own teacher, whose hedging is already the student's) runs standard only."""
    if not METHODS[method].teacher:
        return [("none", "standard")]
    ablations = config[method]["ablations"]
    return [(r, a) for r in config["richness"] for a in ablations if r != "none" or a == "standard"]


def subsets(config: dict) -> list[str]:
    return [f"c{c}_s{s}" for c in config["coverage"] for s in config["seeds"]]


def runs(config: dict, methods=None) -> list[str]:
    """Every trained variant `{method}/{richness}/{ablation}/c{c}_s{s}` of the grid."""
    return [
        f"{method}/{richness}/{ablation}/{subset}"
        for method in config["methods"]
        if methods is None or method in methods
        for richness, ablation in method_cells(method, config)
        for subset in subsets(config)
    ]


def checkpoint_steps(method_config: dict) -> list[int]:
    """Steps with a saved checkpoint before the last (the last one is the trained model itself)."""
    every = method_config["checkpoint_every"]
    return list(range(every, method_config["steps"], every)) if every else []


def is_subset_eval(config: dict, eval_set: str) -> bool:
    return config["eval_sets"][eval_set]["split"] == "subset"


def eval_targets(config: dict) -> list[str]:
    """Every final evaluation the summary needs; the base model appears once per problem set,
    however many trained variants compare against it."""
    targets = []
    for model in config["models"]:
        for eval_set, spec in config["eval_sets"].items():
            base = [f"base/{s}" for s in subsets(config)] if is_subset_eval(config, eval_set) else ["base"]
            trained = runs(config) if spec.get("variants", "all") == "all" else []
            targets += [EVAL.format(model=model, variant=v, eval_set=eval_set) for v in base + trained]
    return targets


def curve_targets(config: dict) -> list[str]:
    """Evaluations of the rollout methods' checkpoints on their curve eval set (step 0 is the base
    model's evaluation and the last step the trained model's, both already in eval_targets)."""
    return [
        EVAL.format(model=model, variant=f"{run}/step{k}", eval_set=config[run.split("/")[0]]["eval_set"])
        for model in config["models"]
        for run in runs(config, ROLLOUT_METHODS)
        for k in checkpoint_steps(config[run.split("/")[0]])
    ]


def train_outputs(config: dict, name: str, methods=None) -> list[str]:
    return [f"results/{model}/train/{run}/{name}" for model in config["models"] for run in runs(config, methods)]


def claims_eval_set(config: dict) -> str:
    """The OOD eval set the claims, the mechanism regression and the factorial figure read: the
    curves' eval set of the first rollout method the config has a section for ('' if none)."""
    return next((config[m]["eval_set"] for m in ROLLOUT_METHODS if m in config), "")


def richest_context(config: dict) -> str:
    """The richest context level in the grid: the one the paper's claims are about ('' if none)."""
    return next((r for r in RICHEST_FIRST if r in config["richness"]), "")


def teacher_targets(config: dict) -> list[str]:
    """Teacher traces with the richest context and with none, for claim (a)."""
    levels = ["none"] + ([richest_context(config)] if richest_context(config) else [])
    return [
        TEACHER.format(model=model, richness=r, coverage=c, seed=s)
        for model in config["models"]
        for r in levels
        for c in config["coverage"]
        for s in config["seeds"]
    ]


def hyperparameters(config: dict, method: str, coverage) -> dict:
    """What a training job of `method` at `coverage` computes with: the method's section without its
    grid keys, with the section's `by_coverage` entry for that coverage on top (the paper's full-data
    runs take 256 prompts per step, its coverage runs 64)."""
    section = config[method]
    values = {k: v for k, v in section.items() if k not in NOT_HYPERPARAMETERS}
    return {**values, **section.get("by_coverage", {}).get(str(coverage), {})}
