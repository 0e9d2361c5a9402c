# Config accessors (each returns the canonical slice one rule depends on), input functions,
# targets and wildcard constraints. Rules stay thin; the logic is in the selfdistill package.
import json
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

import selfdistill
from selfdistill.code import code_hash
from selfdistill.config import check_config

PKG = Path(workflow.basedir) / "selfdistill"
SCRIPTS = Path(workflow.basedir) / "scripts"
# Jobs import the installed package: it must be this checkout's, whose modules the code params hash.
if Path(selfdistill.__file__).resolve().parent != PKG.resolve():
    raise WorkflowError(
        f"the selfdistill package in use is {Path(selfdistill.__file__).parent}, not this "
        f"checkout's {PKG}: run `pip install -e {workflow.basedir}`"
    )

# Every problem with the config, each named with key, value, file and fix, before any job; the
# schema's defaults are filled in, so rules and scripts read every key directly.
check_config(
    config, Path(workflow.basedir) / "config/schema.yaml", workflow.configfiles
)


wildcard_constraints:
    model=r"[A-Za-z0-9_.-]+",
    dataset=r"[A-Za-z0-9_.-]+",
    richness=r"none|answer|solution|solution_nothink|regen",
    coverage=r"\d+|full",
    seed=r"\d+",
    method=r"sft|onpolicy|grpo",
    rollout_method=r"onpolicy|grpo",
    ablation=r"standard|preserve|suppress",
    eval_set=r"[A-Za-z0-9_.-]+",
    variant=r"base(/c(\d+|full)_s\d+)?|(sft|onpolicy|grpo)/[a-z_]+/[a-z]+/c(\d+|full)_s\d+",


def code(script, wc=None):
    """The code param: a hash of the package modules the rule's script imports, and of the model's
    generation backend when given the job's wildcards (so editing vllm.py re-runs no hf job).
    """
    backend = config["models"][wc.model].get("backend", "hf") if wc else None
    return code_hash(SCRIPTS / f"{script}.py", backend)


# Resources of each job kind; the config's `resources` section overrides them (GPU counts, memory, runtime for
# a cluster). Model jobs ask for one `gpu` so a workstation run with --resources gpu=N never
# oversubscribes its GPUs; on CPU, leave gpu unset and they are unlimited.
RULE_RESOURCES = {
    "prepare_dataset": {"mem_mb": 2000, "runtime": 30},
    "coverage_subset": {"mem_mb": 1000, "runtime": 10},
    "pretrain_toy": {"mem_mb": 4000, "runtime": 60},
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
    if any(m.get("backend", "hf") == "vllm" for m in config["models"].values())
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


def model_slice(model):
    return canon(config["models"][model])


def toy_pretrain_spec():
    """toy_pretrain with its largest operand: set there, else the training dataset's (a toy one)."""
    train = config["datasets"][config["train_dataset"]]
    default = train["toy"]["max_operand"] if train["loader"] == "toy" else 9
    return {"max_operand": default, **config["toy_pretrain"]}


def dataset_file(name):
    return f"results/data/{name}.parquet"


def subset_file(coverage, seed):
    return f"results/subsets/{config['train_dataset']}/c{coverage}_s{seed}.parquet"


# ---- evaluation variants --------------------------------------------------------------

VARIANT_RE = re.compile(
    r"(?P<method>base|sft|onpolicy|grpo)(/(?P<richness>[a-z_]+)/(?P<ablation>[a-z]+))?(/c(?P<coverage>\d+|full)_s(?P<seed>\d+))?$"
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
    training = {"training": config["training"]} if "training" in config else {}
    return canon({**hp, "lora": config["lora"], **training})


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
            base = (
                [f"base/{s}" for s in subsets] if is_subset_eval(eval_set) else ["base"]
            )
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


def table1_targets():
    if "table1" not in config:
        return []
    richness = ["none"] + [r for r in config["table1"]["richness"] if r != "none"]
    return expand(
        "results/{model}/table1/{richness}.parquet",
        model=config["models"],
        richness=richness,  # none (unguided) selects the problems, so it always runs
    )


FIGURE_NAMES = [
    "accuracy_by_richness",
    "length_by_richness",
    "epistemic_by_richness",
    "train_loss",
    "training_curves",
    "factorial_ood_vs_epistemic",
]
FIGURES = expand("results/figures/{name}.png", name=FIGURE_NAMES)
FIGURE_CATEGORIES = {
    "accuracy_by_richness": "Richness and coverage",
    "length_by_richness": "Richness and coverage",
    "epistemic_by_richness": "Richness and coverage",
    "train_loss": "Training (method)",
    "training_curves": "Training (method)",
    "factorial_ood_vs_epistemic": "Uncertainty ablation",
}


# ---- input functions ----------------------------------------------------------------


def teacher_inputs(wc):
    inputs = {"model": model_input(wc), "subset": subset_file(wc.coverage, wc.seed)}
    if wc.richness == "regen":
        # The regen context is a response the model produced while given the solution.
        inputs["demos"] = (
            f"results/{wc.model}/teacher/solution/c{wc.coverage}_s{wc.seed}.parquet"
        )
    return inputs


def sft_inputs(wc):
    inputs = {
        "model": model_input(wc),
        "subset": subset_file(wc.coverage, wc.seed),
        "traces": f"results/{wc.model}/teacher/{wc.richness}/c{wc.coverage}_s{wc.seed}.parquet",
    }
    if wc.ablation != "standard":
        # Trace selection matches (or minimizes) the model's own unguided epistemic counts.
        inputs["unguided"] = (
            f"results/{wc.model}/teacher/none/c{wc.coverage}_s{wc.seed}.parquet"
        )
    return inputs


def rollout_eval_set(wc):
    return config[wc.rollout_method]["eval_set"]


def eval_inputs(wc):
    v = parse_variant(wc.variant)
    es = config["eval_sets"][wc.eval_set]
    inputs = {"model": model_input(wc)}
    if es["split"] == "subset":
        inputs["problems"] = subset_file(v["coverage"], v["seed"])
    else:
        inputs["problems"] = dataset_file(es["dataset"])
    if v["method"] != "base":
        inputs["adapter"] = f"results/{wc.model}/train/{wc.variant}/adapter"
    return inputs
