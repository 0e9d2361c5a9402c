# Config accessors (each returns the canonical slice one rule depends on), targets and
# wildcard constraints. Rules stay thin; the logic is in the selfdistill package.
import os
import re
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)  # the package in this checkout, not another installed copy

from selfdistill.config import check_config
from selfdistill.io import canonical_json

# Clear messages first (naming key, value, file and fix); then Snakemake's own validation.
check_config(config, Path(workflow.basedir) / "config/schema.yaml", workflow.configfiles)
validate(config, "../config/schema.yaml")


wildcard_constraints:
    model=r"[A-Za-z0-9_.-]+",
    dataset=r"[A-Za-z0-9_.-]+",
    richness=r"none|answer|solution|solution_nothink|regen",
    coverage=r"\d+",
    seed=r"\d+",
    method=r"sft|onpolicy|grpo",
    rollout_method=r"onpolicy|grpo",
    ablation=r"standard|preserve|suppress",
    eval_set=r"[A-Za-z0-9_.-]+",
    variant=r"base(/c\d+_s\d+)?|(sft|onpolicy|grpo)/[a-z_]+/[a-z]+/c\d+_s\d+",


PKG = Path(workflow.basedir) / "selfdistill"
# Jobs import the package from this checkout, the same files the rules list as inputs.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")]))


def pkg(*modules):
    """Package modules a rule's script relies on: inputs, so editing one re-runs its jobs."""
    return [str(PKG / m) for m in modules]


# Modules nearly every model-facing job imports.
MODEL_CODE = pkg("models.py", "prompts.py", "io.py")
GENERATION_CODE = MODEL_CODE + pkg(
    "generation.py",
    "grading.py",
    "epistemic.py",
    "backends/__init__.py",
    "backends/hf.py",
)


def canon(value):
    return canonical_json(value)


# ---- model and data locations ---------------------------------------------------------


def model_dir(model):
    """Local directory (built by the workflow) or hub id / path of a model."""
    source = config["models"][model]["source"]
    return f"results/models/{model}/hf" if source == "toy" else source


def model_input(wildcards):
    """The model directory as a job input when the workflow builds it; nothing for hub models."""
    source = config["models"][wildcards.model]["source"]
    return [model_dir(wildcards.model)] if source == "toy" else []


def model_slice(model):
    return canon(config["models"][model])


def dataset_file(name):
    return f"results/data/{name}.parquet"


def subset_file(coverage, seed):
    return f"results/subsets/{config['train_dataset']}/c{coverage}_s{seed}.parquet"


# ---- evaluation variants --------------------------------------------------------------

VARIANT_RE = re.compile(
    r"(?P<method>base|sft|onpolicy|grpo)(/(?P<richness>[a-z_]+)/(?P<ablation>[a-z]+))?(/c(?P<coverage>\d+)_s(?P<seed>\d+))?$"
)


def parse_variant(variant):
    return VARIANT_RE.match(variant).groupdict()


def is_subset_eval(eval_set):
    return config["eval_sets"][eval_set]["split"] == "subset"


def method_cells(method):
    """(richness, ablation) pairs a method runs. GRPO has no teacher, hence no context or ablation."""
    if method == "grpo":
        return [("none", "standard")]
    return [(r, a) for r in config["richness"] for a in config[method]["ablations"]]


def method_slice(method):
    """A method's hyperparameters; its list of ablations is a grid axis, not a hyperparameter."""
    hp = {k: v for k, v in config[method].items() if k != "ablations"}
    return canon({**hp, "lora": config["lora"]})


def trained_variants():
    return [
        f"{method}/{richness}/{ablation}/c{coverage}_s{seed}"
        for method in config["methods"]
        for richness, ablation in method_cells(method)
        for coverage in config["coverage"]
        for seed in config["seeds"]
    ]


def eval_targets():
    """Every (model, variant, eval set) the summary needs; the base model appears once per
    problem set, however many trained variants compare against it."""
    targets = []
    subsets = [f"c{c}_s{s}" for c in config["coverage"] for s in config["seeds"]]
    for model in config["models"]:
        for eval_set in config["eval_sets"]:
            base = [f"base/{s}" for s in subsets] if is_subset_eval(eval_set) else ["base"]
            for variant in base + trained_variants():
                targets.append(f"results/{model}/eval/{variant}/{eval_set}.parquet")
    return targets


def train_outputs(name, methods=("sft", "onpolicy", "grpo")):
    return [
        f"results/{model}/train/{variant}/{name}"
        for model in config["models"]
        for variant in trained_variants()
        if variant.split("/")[0] in methods
    ]


RICHEST_FIRST = ["solution", "regen", "solution_nothink", "answer"]


def richest_context():
    """The richest context level in the grid: the one the paper's claims are about ('' if none)."""
    return next((r for r in RICHEST_FIRST if r in config["richness"]), "")


def teacher_targets():
    """Teacher traces with the richest context and with none, for claim (a)."""
    levels = ["none"] + ([richest_context()] if richest_context() else [])
    return [
        f"results/{model}/teacher/{r}/c{c}_s{s}.parquet"
        for model in config["models"]
        for r in levels
        for c in config["coverage"]
        for s in config["seeds"]
    ]


FIGURE_NAMES = [
    "accuracy_by_richness",
    "length_by_richness",
    "epistemic_by_richness",
    "train_loss",
    "training_curves",
    "factorial_ood_vs_epistemic",
]
FIGURES = expand("results/figures/{name}.png", name=FIGURE_NAMES)
