"""The whole config: its top-level keys (the experiment's axes and catalogs, each section), the
JSON schema generated from them and from the method registry (grid.METHODS), and the cross-field
checks of every section, run in one pass."""

from __future__ import annotations

import copy
import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Literal

from selfdistill.grid import METHODS
from selfdistill.settings.core import (
    Constraint,
    Name,
    NonNegativeInt,
    Partial,
    PositiveInt,
    Richness,
    choices,
    object_schema,
    optional,
)
from selfdistill.settings.data import DatasetConfig
from selfdistill.settings.generation import EvalSetConfig, GenerationConfig, TeacherConfig
from selfdistill.settings.grading import GradingConfig
from selfdistill.settings.methods import (
    CurveEvalSet,
    PerCoverage,
    TeacherAxes,
    check_by_coverage,
    check_curve_eval_set,
    settings_class,
)
from selfdistill.settings.models import ModelConfig
from selfdistill.settings.organism import OrganismConfig
from selfdistill.settings.prompts import Prompts
from selfdistill.settings.table1 import Table1Config
from selfdistill.settings.toy import ToyPretrainConfig, ToyPretrainOverride
from selfdistill.settings.training import EngineConfig, LoraConfig, TrainingConfig

Coverage = Annotated[
    PositiveInt | Literal["full"],
    Constraint(description="distinct training problems, or `full` (the whole training split)"),
]
Rule = Literal[
    "prepare_dataset",
    "coverage_subset",
    "pretrain_toy",
    "gate",
    "teacher_traces",
    "train_sft",
    "train_rollouts",
    "evaluate",
    "statistics",
]


@dataclass(frozen=True, kw_only=True)
class ModelEntry(ModelConfig):
    """`models.<name>`: a model under study; a toy model may override its own pretraining."""

    toy_pretrain: Annotated[dict, Partial(ToyPretrainOverride)] | None = optional()
    """a toy model's own pretraining: its seed, micro-batch split and traces override toy_pretrain's (another
    world, pretraining seed, floating-point order or dose of checking); read by the pretraining rule only"""


@dataclass(frozen=True, kw_only=True)
class Workflow:
    """The workflow's config: config/config.yaml, with the overlays given by --configfile on top.
    Each axis is a list; the workflow runs their product."""

    datasets: Annotated[dict[Name, DatasetConfig], Constraint(minProperties=1)]
    """problem sources, by name"""
    train_dataset: Name
    """the dataset whose "train" split the coverage subsets are drawn from"""
    models: Annotated[dict[Name, ModelEntry], Constraint(minProperties=1)]
    """the models under study, by name (each a grid axis value)"""
    toy_pretrain: ToyPretrainConfig | None = optional()
    """pretraining of the toy models (those with source: toy)"""
    prompts: Prompts
    richness: choices(Richness)
    """the teacher's contexts: none (the model itself, the control arm), answer, solution, solution_nothink,
    regen"""
    coverage: choices(Coverage)
    """distinct training problems per run (nested subsets); full: the whole training split"""
    seeds: choices(NonNegativeInt)
    """training seeds (subsets, sampling, adapter initialization)"""
    methods: choices(Literal[tuple(METHODS)])
    """the training methods run; each needs its section"""
    coverage_files: dict[Annotated[str, Constraint(pattern="^([0-9]+|full)$")], Name] = field(default_factory=dict)
    """coverage -> a dataset (under datasets) whose training problems are that coverage's subset, for every
    seed, instead of the seeded nested draw: the paper's shipped subsets (config/paper_subsets.yaml)"""
    train_batch_size: PositiveInt
    """a subset smaller than this is repeated to fill it (1 x 64, 8 x 8)"""
    teacher: TeacherConfig
    lora: LoraConfig
    training: TrainingConfig = field(default_factory=TrainingConfig)
    rollouts: EngineConfig = field(default_factory=EngineConfig)
    eval_sets: Annotated[dict[Name, EvalSetConfig], Constraint(minProperties=1)]
    """what every variant is evaluated on, by name"""
    organism: OrganismConfig | None = optional()
    grading: GradingConfig
    table1: Table1Config | None = optional()
    resources: dict[Rule, dict[str, int | str]] | None = optional()
    """per-rule resource overrides (mem_mb, runtime in minutes, gpu, ...), e.g. for a cluster"""
    generation: GenerationConfig

    @staticmethod
    def check(config: dict, error) -> None:
        for method in config["methods"]:
            if METHODS[method].rollouts:
                check_curve_eval_set(config, method, error)
                check_by_coverage(config, method, error)


def method_schema(method: str) -> dict:
    """A method's section: its hyperparameters and its grid keys."""
    schema = object_schema(settings_class(method))
    spec = METHODS[method]
    for keys in [TeacherAxes] * spec.teacher + [CurveEvalSet, PerCoverage] * spec.rollouts:
        extra = object_schema(keys)
        schema["properties"].update(extra["properties"])
        schema["required"] = [*schema.get("required", []), *extra.get("required", [])]
    if spec.rollouts:  # an override holds some of the section's own settings, checked as they are
        overrides = object_schema(settings_class(method), partial=True)
        schema["properties"]["by_coverage"]["additionalProperties"] = overrides
    return schema


def coverage_keys_as_text(config: dict) -> None:
    """Maps keyed by coverage (`coverage_files`, a method's `by_coverage`) take the coverage as text,
    as the jobs' wildcards do: YAML reads `64:` as a number."""
    config["coverage_files"] = {str(k): v for k, v in config["coverage_files"].items()}
    for method in METHODS:
        if "by_coverage" in config.get(method, {}):
            config[method]["by_coverage"] = {str(k): v for k, v in config[method]["by_coverage"].items()}


@functools.cache
def _schema() -> dict:
    schema = object_schema(Workflow)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["allOf"] = []
    for method in METHODS:
        schema["properties"][method] = method_schema(method)
        # A method's section is required only when the method runs.
        runs = {"properties": {"methods": {"contains": {"const": method}}}, "required": ["methods"]}
        needs = {"required": [method], "description": f"methods lists {method}"}
        schema["allOf"].append({"if": runs, "then": needs})
    return schema


def schema() -> dict:
    """The JSON schema of the whole config (Draft 2020-12), with every default."""
    return copy.deepcopy(_schema())


def _section_class(kind):
    """The section class a top-level key holds (its value's, for a catalog), if any."""
    while typing.get_origin(kind) in (Annotated, typing.Union, types.UnionType, dict):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        kind = args[-1] if typing.get_origin(kind) is dict else args[0]
    return kind if dataclasses.is_dataclass(kind) else None


def section_checks() -> list[tuple[str, typing.Callable]]:
    """(top-level key, check) of every section that has cross-field checks, in config order."""
    hints = typing.get_type_hints(Workflow, include_extras=True)
    found = [(f.name, _section_class(hints[f.name])) for f in dataclasses.fields(Workflow)]
    found += [(method, settings_class(method)) for method in METHODS]
    return [(key, cls.check) for key, cls in found if cls is not None and hasattr(cls, "check")]


def cross_field_errors(config: dict, error) -> None:
    """Every section's checks, for the sections the config has; then the whole config's."""
    for key, check in section_checks():
        if key in config:
            check(config, error)
    Workflow.check(config, error)
