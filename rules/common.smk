# Config accessors (each returns the canonical slice one rule depends on), input functions,
# targets and wildcard constraints. The grid itself (methods, paths, enumeration) is
# selfdistill.grid; rules stay thin, the logic is in the selfdistill package.
import json
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

import selfdistill
from selfdistill import grid
from selfdistill.code import code_hash
from selfdistill.config import COMMAND_LINE, check_config
from selfdistill.settings.models import model_section
from selfdistill.toy_worlds import (
    gated_models,
    pretrained_draws,
    toy_pretrain_spec,
    toy_world,
    world_pairs,
)

PKG = Path(workflow.basedir) / "selfdistill"
SCRIPTS = Path(workflow.basedir) / "scripts"
# Jobs import the installed package: it must be this checkout's, whose modules the code params hash.
if Path(selfdistill.__file__).resolve().parent != PKG.resolve():
    raise WorkflowError(
        f"the selfdistill package in use is {Path(selfdistill.__file__).parent}, not this "
        f"checkout's {PKG}: run `pip install -e {workflow.basedir}`"
    )

# Every problem with the config, each named with key, value, file and fix, before any job; nulled
# keys are deleted and the declared defaults filled in, so rules and scripts read every key directly.
check_config(
    config,
    [
        DEFAULT_CONFIG,
        *workflow.overwrite_configfiles,
        (COMMAND_LINE, dict(workflow.config_settings.config)),
    ],
)


wildcard_constraints:
    **grid.WILDCARDS,


def code(script, wc=None):
    """The code param: a hash of the rule's script and the package modules it imports, and of the
    generation backends the job runs when given its wildcards: the model's, and for training the
    rollout engine's (so editing vllm.py re-runs no hf job)."""
    backends = ()
    if wc:
        backends = (config["models"][wc.model]["backend"],)
        if script == "train_rollouts":
            backends = tuple(sorted({*backends, rollout_engine(wc.model)["backend"]}))
    return code_hash(SCRIPTS / f"{script}.py", backends)


def rollout_engine(model):
    """The `rollouts` section with its backend resolved: the section's, else the model's."""
    section = config["rollouts"]
    return {
        **section,
        "backend": section["backend"] or config["models"][model]["backend"],
    }


# Resources of each job kind; the config's `resources` section overrides them (GPU counts, memory, runtime for
# a cluster). Model jobs ask for one `gpu` so a workstation run with --resources gpu=N never
# oversubscribes its GPUs; on CPU, leave gpu unset and they are unlimited.
RULE_RESOURCES = {
    "prepare_dataset": {"mem_mb": 2000, "runtime": 30},
    "coverage_subset": {"mem_mb": 1000, "runtime": 10},
    "pretrain_toy": {"mem_mb": 4000, "runtime": 60},
    "gate": {"mem_mb": 1000, "runtime": 10},
    "teacher_traces": {"mem_mb": 4000, "runtime": 120, "gpu": 1},
    "train_sft": {"mem_mb": 4000, "runtime": 120, "gpu": 1},
    "train_rollouts": {"mem_mb": 4000, "runtime": 240, "gpu": 1},
    "evaluate": {"mem_mb": 4000, "runtime": 120, "gpu": 1},
    "statistics": {"mem_mb": 2000, "runtime": 10},
}


def rule_resources(rule):
    return {**RULE_RESOURCES[rule], **config.get("resources", {}).get(rule, {})}


# Conda environment of model jobs: the GPU one (vLLM, CUDA torch) when a model is served by vLLM.
# One per config, not per job: a per-job function costs DAG time on the paper's 4,000-job grid.
MODEL_ENV = (
    "../envs/gpu.yaml"
    if any(m["backend"] == "vllm" for m in config["models"].values())
    else "../envs/cpu.yaml"
)


def canon(value):
    """A config slice as a param: sorted, compact JSON (as selfdistill.io.canonical_json, which
    imports pyarrow: not at parse time). A brace that would read as a wildcard (a template's
    {problem}: Snakemake formats string params) is written as its JSON escape \\u007b.
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return re.sub(r"\{(?=\s*[.\w])", r"\\u007b", text)


# ---- model and data locations ---------------------------------------------------------


def model_input(wildcards):
    """The model directory when the workflow builds it (a toy model); nothing for hub ids and paths."""
    model = wildcards.model
    return (
        f"results/models/{model}/hf"
        if config["models"][model]["source"] == "toy"
        else []
    )


def gate_input(wildcards):
    """The gate a distillation job waits for, where the model's world has one. A plain input, not
    `ancient`: Snakemake then skips the own rerun reasons (changed params) of every job downstream of
    a re-run gate, which left evaluations stale after an eval-set edit. The cost: an edit of the gate's
    eval sets re-runs the model's training."""
    model = wildcards.model
    return [f"results/{model}/gate.json"] if model in gated_models(config) else []


def pretraining_record(model):
    """What a gate records beside its numbers: the pretraining seed and the dose of checking."""
    spec = toy_pretrain_spec(config, model)
    return {"seed": spec["seed"], "p_check": spec["traces"]["p_check"]}


def gate_inputs(wc):
    gate = config["organism"]
    evals = {
        key: grid.EVAL.format(model=wc.model, variant="base", eval_set=gate[key])
        for key in ("ood_off", "ood_on", "in_domain_off", "in_domain_on")
    }
    eval_set = config["eval_sets"][gate["ood_on"]]
    return {**evals, "problems": dataset_file(eval_set["dataset"])}


def model_slice(model, job="generation"):
    """The model's section as a model job of kind `job` (generation, training) reads it."""
    return canon(model_section(config, model, job))


def hyperparameters(method, coverage):
    """A method's section at a coverage (grid.hyperparameters): without its grid axes (ablations) and
    the eval set of its curves, which decide which jobs exist and what evaluates them, not what a
    training job computes; with the section's `by_coverage` entry for that coverage."""
    return canon(grid.hyperparameters(config, method, coverage))


def dataset_file(name):
    return grid.DATA.format(dataset=name)


def subset_file(coverage, seed):
    return grid.SUBSET.format(
        dataset=config["train_dataset"], coverage=coverage, seed=seed
    )


# ---- targets --------------------------------------------------------------------------

EVALS = grid.eval_targets(config)
CURVE_EVALS = grid.curve_targets(config)
TEACHER_TARGETS = grid.teacher_targets(config)
RICHEST = grid.richest_context(config)
# Per rollout method: the eval set of its curves and its number of steps (the summary's step axis).
CURVES = {
    m: {"eval_set": config[m]["eval_set"], "steps": config[m]["steps"]}
    for m in config["methods"]
    if grid.METHODS[m].rollouts
}
# The OOD eval set the claims and the factorial figure read.
CLAIMS_EVAL_SET = grid.claims_eval_set(config)


# The organism's toy models (a guess world, with an `organism` section) and their gates.
WORLDS = {m: toy_world(config, m) for m in gated_models(config)}
GATES = [f"results/{m}/gate.json" for m in WORLDS]
# Every trained arm (method, richness, ablation) of the grid, for the predictions.
ARMS = sorted(
    {
        tuple(run.split("/")[:3])
        for run in grid.runs({**config, "coverage": [0], "seeds": [0]})
    }
)


def train_outputs(name, methods=None):
    return grid.train_outputs(config, name, methods)


def table1_targets():
    if "table1" not in config:
        return []
    richness = ["none"] + [r for r in config["table1"]["richness"] if r != "none"]
    return expand(
        "results/{model}/table1/{richness}.parquet",
        model=config["models"],
        richness=richness,  # none (unguided) selects the problems, so it always runs
    )


# ---- input functions ----------------------------------------------------------------


def teacher_file(wc, richness):
    return grid.TEACHER.format(
        model=wc.model, richness=richness, coverage=wc.coverage, seed=wc.seed
    )


def teacher_inputs(wc):
    inputs = {
        "model": model_input(wc),
        "gate": gate_input(wc),
        "subset": subset_file(wc.coverage, wc.seed),
    }
    if wc.richness == "regen":
        # The regen context is a response the model produced while given the solution.
        inputs["demos"] = teacher_file(wc, "solution")
    return inputs


def sft_inputs(wc):
    inputs = {
        "model": model_input(wc),
        "gate": gate_input(wc),
        "subset": subset_file(wc.coverage, wc.seed),
        "traces": teacher_file(wc, wc.richness),
    }
    if wc.ablation != "standard":
        # Trace selection matches (or minimizes) the model's own unguided epistemic counts.
        inputs["unguided"] = teacher_file(wc, "none")
    return inputs


def eval_inputs(wc):
    """The model, the problems, and the trained weights: the adapter (or fully fine-tuned model)
    of a trained variant, or the checkpoints directory of a checkpoint `…/step{k}`."""
    v = grid.parse_variant(wc.variant)
    inputs = {"model": model_input(wc)}
    if grid.is_subset_eval(config, wc.eval_set):
        inputs["problems"] = subset_file(v["coverage"], v["seed"])
    else:
        inputs["problems"] = dataset_file(config["eval_sets"][wc.eval_set]["dataset"])
    if v["method"] != "base":
        run = grid.TRAIN.format(model=wc.model, **v)
        inputs["trained"] = f"{run}/checkpoints" if v["step"] else f"{run}/adapter"
    return inputs
