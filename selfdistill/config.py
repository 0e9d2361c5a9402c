"""Config checks run when the workflow starts, before any job: one clear message per problem,
naming the file, the key, the value and the fix. The schema (config/schema.yaml) holds every
default; `check_config` fills them in, then checks what the schema cannot express (references
between sections, sizes against the model, prompt placeholders) in `semantic_errors`, the one
place for checks across fields.

`python -m selfdistill.config FILE` checks a config file on its own (Snakemake reports an
unreadable --configfile without its line).
"""

from __future__ import annotations

import copy
import json
import os
import re
import struct
import sys
from pathlib import Path

import jsonschema
import yaml

from selfdistill.grid import NOT_HYPERPARAMETERS, PER_GRID_KEYS, ROLLOUT_METHODS

SCHEMA = Path(__file__).resolve().parents[1] / "config" / "schema.yaml"


class ConfigError(ValueError):
    pass


def load_schema(path=SCHEMA) -> dict:
    return yaml.safe_load(Path(path).read_text())


def load_yaml(path) -> dict:
    """A config file, or a ConfigError naming the file and the line that YAML cannot read."""
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        raise ConfigError(
            f"{where}: not valid YAML ({getattr(error, 'problem', error)}); fix the file there"
        ) from error
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: a config file holds keys at the top level (found {type(loaded).__name__})")
    return loaded


def _where(path: tuple, config_files) -> str:
    """The last config file that sets this key path (later files override earlier ones)."""
    found = None
    for f in config_files or ():
        node = yaml.safe_load(Path(f).read_text()) or {}
        for key in path:
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and isinstance(key, int) and key < len(node):
                node = node[key]
            else:
                break
        else:
            found = f
    if found is None and config_files:  # a default the files leave unset: name the last file
        found = list(config_files)[-1]
    return str(found) if found else "the merged config"


def _describe(error: jsonschema.ValidationError, config_files) -> str:
    path = tuple(error.absolute_path)
    key = ".".join(map(str, path)) or "(top level)"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        return (
            f"{_where(path, config_files)}: unknown key(s) {', '.join(map(repr, unknown))} under {key}; "
            f"remove or rename them (allowed: {', '.join(allowed)})"
        )
    if error.validator == "required":
        return f"{_where(path, config_files)}: {key} is missing {error.message.split(' is a required')[0]}; add it"
    if error.validator == "enum":
        return (
            f"{_where(path, config_files)}: {key} = {error.instance!r} is not allowed; "
            f"use one of {', '.join(map(repr, error.validator_value))}"
        )
    if error.validator == "minItems" and error.validator_value == 1:
        return f"{_where(path, config_files)}: {key} is empty; list at least one value"
    described = isinstance(error.schema, dict) and "description" in error.schema
    expected = f" (expected: {error.schema['description']})" if described else ""
    return f"{_where(path, config_files)}: {key} = {error.instance!r}: {error.message}{expected}; fix this value"


def schema_errors(config: dict, schema: dict, config_files=()) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [_describe(e, config_files) for e in sorted(validator.iter_errors(config), key=lambda e: list(e.path))]


def _filling_validator():
    """Draft 2020-12 validation that also writes each property's schema `default` where it is unset."""
    base = jsonschema.Draft202012Validator

    def properties(validator, props, instance, schema):
        if isinstance(instance, dict):
            for name, sub in props.items():
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from base.VALIDATORS["properties"](validator, props, instance, schema)

    return jsonschema.validators.extend(base, {"properties": properties})


def with_defaults(config: dict, schema: dict | None = None) -> dict:
    """Fill the schema's defaults into `config` in place (and return it): after this, code reads
    every optional key directly, with no fallback of its own."""
    for _ in _filling_validator()(schema or load_schema()).iter_errors(config):
        pass
    return config


OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


def offline() -> bool:
    """Whether the Hugging Face libraries are told not to reach the hub."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_VARIABLES)


def _hub_cache() -> str:
    return os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.expanduser("~/.cache/huggingface"), "hub"
    )


def in_hub_cache(repo_id: str, repo_type: str) -> bool:
    """Whether a hub repository has a snapshot in the local cache (what offline loading can use)."""
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(repo_id, repo_type=repo_type, cache_dir=_hub_cache(), local_files_only=True)
        return True
    except Exception:  # not cached (LocalEntryNotFoundError), or not a valid repo id
        return False


# ---- what a model can take, read from local files only (nothing downloaded) ---------------------

# The linear layers of the toy model (a Qwen2; tests/test_config.py checks this list against the
# built model): LoRA's target_modules for it are checked before the model exists.
TOY_MODULES = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"})


def _local_file(source: str, filename: str) -> Path | None:
    """`filename` of a model: in its directory, or in the hub cache's snapshot of a hub id."""
    if Path(source).is_dir():
        path = Path(source) / filename
        return path if path.is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(source, filename, cache_dir=_hub_cache())
    except Exception:  # not a valid repo id
        return None
    return Path(found) if isinstance(found, str) else None


def _weight_names(source: str) -> list[str]:
    """Parameter names of a local checkpoint, from its safetensors index or header (no weights read)."""
    index = _local_file(source, "model.safetensors.index.json")
    if index:
        return list(json.loads(index.read_text())["weight_map"])
    single = _local_file(source, "model.safetensors")
    if single:
        with open(single, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            return [k for k in json.loads(f.read(size)) if k != "__metadata__"]
    return []


def toy_pretrain_spec(config: dict, model: str) -> dict:
    """A toy model's pretraining: `toy_pretrain`, with the model's own seed and traces on top and
    its largest operand resolved (set there, else the training dataset's, a toy one)."""
    own = config["models"][model].get("toy_pretrain", {})
    train = config["datasets"][config["train_dataset"]]
    max_operand = train["toy"]["max_operand"] if train["loader"] == "toy" else 9
    spec = {"max_operand": max_operand, **config["toy_pretrain"], **own}
    spec["traces"] = {**config["toy_pretrain"]["traces"], **own.get("traces", {})}
    return spec


def model_section(config: dict, model: str) -> dict:
    """The `models.<name>` slice a model job gets: without the toy pretraining overrides, which
    only the pretraining rule reads (through toy_pretrain_spec)."""
    return {k: v for k, v in config["models"][model].items() if k != "toy_pretrain"}


def toy_world(config: dict, model: str) -> str | None:
    """The world a toy model was pretrained in (None for any other model)."""
    if config["models"][model]["source"] != "toy":
        return None
    return toy_pretrain_spec(config, model)["traces"]["world"]


def gated_models(config: dict) -> list[str]:
    """Models the gate checks before distillation: toy models of a guess world, when there is a gate."""
    if "organism" not in config:
        return []
    return [m for m in config["models"] if toy_world(config, m) in ("guess_check", "null")]


def world_pairs(config: dict) -> list[tuple[str, str]]:
    """(guess_check model, null model) pairs pretrained identically but for the world: the
    between-world comparison of the same arm, the mechanism's evidence."""

    def rest(model):
        spec = toy_pretrain_spec(config, model)
        return json.dumps({**spec, "traces": {**spec["traces"], "world": None}}, sort_keys=True)

    models = gated_models(config)
    return [
        (check, null)
        for check in models
        if toy_world(config, check) == "guess_check"
        for null in models
        if toy_world(config, null) == "null" and rest(check) == rest(null)
    ]


def model_facts(model: dict, config: dict) -> dict:
    """What the checks need to know of a model, where known without downloading anything:
    vocab (the logits' width), context (prompt + generated positions), modules (layer names)."""
    if model["source"] == "toy":
        arch = config["toy_pretrain"]["arch"]
        # vocab_size bounds the tokenizer the workflow trains (it may come out smaller).
        return {
            "vocab": config["toy_pretrain"]["vocab_size"],
            "context": arch["max_positions"],
            "context_key": "toy_pretrain.arch.max_positions",
            "modules": TOY_MODULES,
        }
    facts = {}
    config_json = _local_file(model["source"], "config.json")
    if config_json:
        hf = json.loads(config_json.read_text())
        hf = hf.get("text_config", hf)
        facts["vocab"] = hf.get("vocab_size")
        facts["context"], facts["context_key"] = hf.get("max_position_embeddings"), "max_position_embeddings"
    if model["backend"] == "vllm" and "max_model_len" in model["vllm"]:
        facts["context"], facts["context_key"] = model["vllm"]["max_model_len"], "vllm.max_model_len"
    names = _weight_names(model["source"])
    if names:
        facts["modules"] = frozenset(n.rsplit(".", 1)[0].rsplit(".", 1)[-1] for n in names if "." in n)
    return {k: v for k, v in facts.items() if v is not None}


# ---- checks across fields -------------------------------------------------------------------------

PLACEHOLDERS = {
    "student": {"problem"},
    "teacher_answer": {"student", "answer"},
    "teacher_solution": {"student", "solution"},
}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]\w*)\}")  # `{name}`; `\boxed{}` and `{5}` are text


def _dataset_splits(spec: dict) -> set[str] | None:
    """The split labels a dataset will have, when knowable without loading it (else None)."""
    from selfdistill.data import TOY_SPLITS

    if spec["loader"] == "toy":
        sizes = (spec["toy"]["n_train"], spec["toy"]["n_test"], spec["toy"]["n_ood"])
        return {split for split, n in zip(TOY_SPLITS, sizes, strict=True) if n > 0}
    if spec["loader"] == "parquet" and Path(spec["path"]).is_file():
        import pyarrow.parquet as pq

        column = spec.get("columns", {}).get("split", "split")
        if column in pq.read_schema(spec["path"]).names:
            return {str(v) for v in pq.read_table(spec["path"], columns=[column]).column(0).unique().to_pylist()}
        return {spec["split"]}
    return None  # JSONL and hub datasets: known once loaded (prepare_dataset names the splits it found)


def _sampling_budgets(config: dict) -> list[tuple[str, int]]:
    """(key, max_new_tokens) of everything that generates."""
    budgets = [("teacher.max_new_tokens", config["teacher"]["max_new_tokens"])]
    budgets += [(f"{m}.max_new_tokens", config[m]["max_new_tokens"]) for m in ROLLOUT_METHODS if m in config["methods"]]
    budgets += [(f"eval_sets.{n}.max_new_tokens", es["max_new_tokens"]) for n, es in config["eval_sets"].items()]
    if "table1" in config:
        budgets.append(("table1.sampling.max_new_tokens", config["table1"]["sampling"]["max_new_tokens"]))
    return budgets


def semantic_errors(config: dict, config_files=()) -> list[str]:
    """What the schema cannot express. Each message: `file: key = value <what is wrong>; <the fix>`."""
    errors = []

    def error(key: str, value, problem: str, fix: str):
        path = tuple(int(p) if p.isdigit() else p for p in key.split("."))
        errors.append(f"{_where(path, config_files)}: {key} = {value!r} {problem}; {fix}")

    datasets = config["datasets"]
    if config["train_dataset"] not in datasets:
        error("train_dataset", config["train_dataset"], "is not under datasets", "add it or fix the name")
    for name, spec in datasets.items():
        if spec["loader"] == "toy" and "toy" not in spec:
            error(f"datasets.{name}.loader", "toy", "needs a `toy:` block", f"add datasets.{name}.toy")
        if spec["loader"] != "toy" and "path" not in spec:
            error(f"datasets.{name}.loader", spec["loader"], "needs `path`", f"add datasets.{name}.path")
        if spec["loader"] in ("parquet", "jsonl") and "path" in spec and not Path(spec["path"]).exists():
            error(f"datasets.{name}.path", spec["path"], "does not exist", "fix the path")
        for key in ("train_terms", "ood_terms"):
            if "toy" in spec and spec["toy"][key][0] > spec["toy"][key][1]:
                error(
                    f"datasets.{name}.toy.{key}",
                    spec["toy"][key],
                    "is an empty range",
                    "use [low, high] with low <= high",
                )
    for coverage, name in config["coverage_files"].items():
        key = f"coverage_files.{coverage}"
        if name not in datasets:
            error(key, name, "is not under datasets", "add the dataset (its loader, path and columns) or fix the name")
    train = datasets.get(config["train_dataset"], {})
    if train.get("loader") == "toy":
        n_train = train["toy"]["n_train"]
        too_big = [c for c in config["coverage"] if c != "full" and c > n_train]
        if too_big:
            error(
                "coverage",
                config["coverage"],
                f"has {too_big}, more than the {n_train} training problems of dataset {config['train_dataset']!r}",
                f"lower coverage or raise datasets.{config['train_dataset']}.toy.n_train",
            )
    for name, es in config["eval_sets"].items():
        if es["dataset"] not in datasets:
            error(f"eval_sets.{name}.dataset", es["dataset"], "is not under datasets", "add it or fix the name")
        elif es["split"] != "subset":
            splits = _dataset_splits(datasets[es["dataset"]])
            if splits is not None and es["split"] not in splits:
                error(
                    f"eval_sets.{name}.split",
                    es["split"],
                    f"is not a split of dataset {es['dataset']!r} "
                    f"(its splits: {', '.join(sorted(splits)) or 'none with problems'})",
                    "use one of them, or 'subset'",
                )

    templates = config["prompts"]
    for template, allowed in PLACEHOLDERS.items():
        used = set(_PLACEHOLDER.findall(templates[template]))
        if used - allowed:
            error(
                f"prompts.{template}",
                templates[template],
                f"has unknown placeholder(s) {sorted(used - allowed)}, which would be sent literally",
                f"use only {', '.join('{' + a + '}' for a in sorted(allowed))}",
            )
        if allowed - used:
            error(
                f"prompts.{template}",
                templates[template],
                f"lacks {', '.join('{' + a + '}' for a in sorted(allowed - used))}"
                + (" (the teacher would never see the question)" if "student" in allowed - used else ""),
                "add the missing placeholder(s)",
            )

    for method in ROLLOUT_METHODS:
        eval_set = config[method]["eval_set"]
        if eval_set not in config["eval_sets"]:
            error(f"{method}.eval_set", eval_set, "is not under eval_sets", "add it or fix the name")
        elif config["eval_sets"][eval_set]["split"] == "subset":
            error(f"{method}.eval_set", eval_set, "uses split 'subset'", "pick a fixed split such as ood")

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
    rollouts = config["rollouts"]
    vllm_rollouts = [name for name, m in config["models"].items() if (rollouts["backend"] or m["backend"]) == "vllm"]
    if vllm_rollouts and any(m in config["methods"] for m in ROLLOUT_METHODS):
        if config["training"]["processes"] > 1 and rollouts["lora_sync"] == "merge":
            error(
                "rollouts.lora_sync",
                "merge",
                "would merge the adapter into weights sharded across training.processes ranks",
                "use lora_sync: request (each rank's engine serves the gathered adapter)",
            )
        if onpolicy["teacher_backend"] == "vllm" and rollouts["sleep"] and "onpolicy" in config["methods"]:
            error(
                "rollouts.sleep",
                True,
                "puts the rollout engine to sleep while the trainer steps, and onpolicy.teacher_backend vllm scores "
                "the frozen teacher through that engine during the steps (its weights offloaded, KV cache freed)",
                "set rollouts.sleep: false (the engine keeps its memory share), or onpolicy.teacher_backend: hf",
            )
        weights_change = config["training"]["finetune"] == "full" or rollouts["lora_sync"] == "merge"
        if onpolicy["teacher_backend"] == "vllm" and weights_change and "onpolicy" in config["methods"]:
            error(
                "onpolicy.teacher_backend",
                "vllm",
                "scores the frozen teacher with the rollout engine's base "
                "weights, which the student's replace here (full fine-tuning, or rollouts.lora_sync: merge); a "
                "second engine would double the GPU memory",
                "set onpolicy.teacher_backend: hf, or train a LoRA adapter with rollouts.lora_sync: request",
            )
    processes = config["training"]["processes"]
    if processes > 1:
        if onpolicy["teacher_backend"] == "vllm":
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

    if "organism" in config:
        gate = config["organism"]
        for key, epistemic in (
            ("ood", "free"),
            ("in_domain", "free"),
            ("ood_off", "banned"),
            ("ood_on", "forced"),
            ("in_domain_off", "banned"),
            ("in_domain_on", "forced"),
        ):
            eval_set = config["eval_sets"].get(gate[key])
            if eval_set is None:
                error(
                    f"organism.{key}",
                    gate[key],
                    "is not an eval set",
                    f"add it under eval_sets with epistemic: {epistemic}",
                )
            elif eval_set["epistemic"] != epistemic:
                error(
                    f"eval_sets.{gate[key]}.epistemic",
                    eval_set["epistemic"],
                    f"must be {epistemic}: it is organism.{key}",
                    f"set it to {epistemic}",
                )
        for off, on in (("ood", "ood_on"), ("ood_off", "ood_on"), ("in_domain_off", "in_domain_on")):
            sets = [config["eval_sets"].get(gate[k]) for k in (off, on)]
            fields = ("dataset", "split", "n_problems", "n_samples", "temperature", "top_p", "top_k", "seed")
            if all(sets) and any(sets[0][f] != sets[1][f] for f in fields):
                error(
                    f"organism.{on}",
                    gate[on],
                    f"samples other problems or otherwise than organism.{off} = {gate[off]}: the comparison is of "
                    "checking on and off, nothing else",
                    f"give both eval sets the same {', '.join(fields)}",
                )
    if "toy_pretrain" in config:
        toy_pretrain = config["toy_pretrain"]
        arch = toy_pretrain["arch"]
        if arch["num_heads"] % arch["num_kv_heads"]:
            error(
                "toy_pretrain.arch.num_kv_heads",
                arch["num_kv_heads"],
                f"does not divide num_heads = {arch['num_heads']}",
                "pick a divisor of num_heads",
            )
        if arch["hidden_size"] % arch["num_heads"]:
            error(
                "toy_pretrain.arch.num_heads",
                arch["num_heads"],
                f"does not divide hidden_size = {arch['hidden_size']}",
                "pick a divisor of hidden_size",
            )
        if toy_pretrain["terms"][0] > toy_pretrain["terms"][1]:
            error("toy_pretrain.terms", toy_pretrain["terms"], "is an empty range", "use [low, high] with low <= high")
    for name, model in config["models"].items():
        if "toy_pretrain" in model and model["source"] != "toy":
            error(f"models.{name}.toy_pretrain", model["toy_pretrain"], "applies to toy models only", "remove it")
        if model["source"] == "toy":
            if "toy_pretrain" not in config:
                error(
                    f"models.{name}.source", "toy", "needs a `toy_pretrain:` block", "add one (see config/config.yaml)"
                )
                continue
        elif model["source"].startswith((".", "/")) and not Path(model["source"]).exists():
            error(f"models.{name}.source", model["source"], "is a path that does not exist", "fix it")
            continue
        errors_for_model = _model_fit_errors(name, model, config)
        for key, value, problem, fix in errors_for_model:
            error(key, value, problem, fix)

    if "table1" in config:
        t1 = config["table1"]
        if t1["dataset"] not in datasets:
            error("table1.dataset", t1["dataset"], "is not under datasets", "add it or fix the name")
        if t1["correct_range"][1] > t1["sampling"]["n_samples"]:
            error("table1.correct_range", t1["correct_range"], "exceeds table1.sampling.n_samples", "lower it")
        if "regen" in t1["richness"] and "solution" not in t1["richness"]:
            error(
                "table1.richness",
                t1["richness"],
                "has regen but not solution (regen's context comes from it)",
                "add solution",
            )
        if t1["correct_range"][0] > t1["correct_range"][1]:
            error("table1.correct_range", t1["correct_range"], "is an empty range", "use [low, high] with low <= high")
    if config["sft"]["batch_size"] % config["sft"]["micro_batch_size"]:
        error(
            "sft.micro_batch_size",
            config["sft"]["micro_batch_size"],
            f"does not divide sft.batch_size = {config['sft']['batch_size']} (a step is whole micro-batches)",
            "change one of them",
        )
    return errors


def _coverage_keys_as_text(config: dict) -> None:
    """Maps keyed by coverage (`coverage_files`, a method's `by_coverage`) take the coverage as text,
    as the jobs' wildcards do: YAML reads `64:` as a number."""
    config["coverage_files"] = {str(k): v for k, v in config["coverage_files"].items()}
    for method in ROLLOUT_METHODS:
        if method in config:
            config[method]["by_coverage"] = {str(k): v for k, v in config[method].get("by_coverage", {}).items()}


def _by_coverage_errors(config: dict, schema: dict, config_files=()) -> list[str]:
    """Each method's `by_coverage` overrides: of the section's own training settings (not those that
    decide which jobs exist), valid as the section's values. An entry for a coverage the grid does not
    run is allowed (an overlay may serve several grids)."""
    errors = []
    for method in (m for m in ROLLOUT_METHODS if m in config):
        section = config[method]
        allowed = sorted(set(section) - set(NOT_HYPERPARAMETERS) - set(PER_GRID_KEYS))
        for coverage, overrides in section.get("by_coverage", {}).items():
            key = f"{method}.by_coverage.{coverage}"
            where = _where(tuple(key.split(".")), config_files)
            for name in sorted(set(overrides) - set(allowed)):
                errors.append(
                    f"{where}: {key}.{name} cannot be set per coverage (allowed: {', '.join(allowed)}); "
                    "set it in the section itself"
                )
            merged = {**section, **{k: v for k, v in overrides.items() if k in allowed}}
            for e in jsonschema.Draft202012Validator(schema).iter_errors({**config, method: merged}):
                if list(e.path)[:1] == [method]:
                    errors.append(f"{where}: {e.message} ({'.'.join(map(str, list(e.path)[1:]))}); fix the override")
    return errors


def _model_fit_errors(name: str, model: dict, config: dict) -> list[tuple]:
    """The config against what model `name` can take: vocabulary, context, LoRA's layer names."""
    facts = model_facts(model, config)
    found = []
    onpolicy = config["onpolicy"]
    if "vocab" in facts and onpolicy["support"] in ("topk", "teacher_topk") and onpolicy["topk"] > facts["vocab"]:
        found.append(
            (
                "onpolicy.topk",
                onpolicy["topk"],
                f"exceeds model {name!r}'s vocabulary of {facts['vocab']} ids",
                f"lower it below {facts['vocab']} or use support: full",
            )
        )
    if "context" in facts:
        for key, budget in _sampling_budgets(config):
            if budget >= facts["context"]:
                found.append(
                    (
                        key,
                        budget,
                        f"leaves no room for the prompt in model {name!r}'s context of "
                        f"{facts['context']} positions ({facts['context_key']})",
                        "lower it, or give the model a longer context",
                    )
                )
    if "modules" in facts and config["training"]["finetune"] == "lora":
        unmatched = [t for t in config["lora"]["target_modules"] if t.rsplit(".", 1)[-1] not in facts["modules"]]
        if unmatched:
            found.append(
                (
                    "lora.target_modules",
                    config["lora"]["target_modules"],
                    f"has {unmatched}, matching no layer of "
                    f"model {name!r} (it has {', '.join(sorted(facts['modules']))})",
                    "remove or rename them (only the others would train)",
                )
            )
    return found


def _offline_errors(config: dict) -> list[str]:
    """Hub ids that offline loading will not find: caught here rather than in a job hours later."""
    wanted = [
        (f"models.{name}.source", m["source"], "model")
        for name, m in config["models"].items()
        if m["source"] != "toy" and not Path(m["source"]).exists()
    ]
    wanted += [
        (f"datasets.{name}.path", d["path"], "dataset")
        for name, d in config["datasets"].items()
        if d["loader"] == "hf" and "path" in d and not Path(d["path"]).exists()
    ]
    return [
        f"{key} = {repo_id!r} is a hub id, the hub is off ({'/'.join(OFFLINE_VARIABLES)}) and it is not in the local "
        f"cache; download it on a machine with internet (`huggingface-cli download {repo_id}"
        f"{' --repo-type dataset' if kind == 'dataset' else ''}`) or set {key} to a local directory"
        for key, repo_id, kind in wanted
        if not in_hub_cache(repo_id, kind)
    ]


def check_config(config: dict, schema_path=SCHEMA, config_files=()) -> dict:
    """Schema errors first; then, with the defaults filled in (in place), the checks across fields.
    Returns the config; raises ConfigError listing every problem found."""
    schema = load_schema(schema_path)
    errors = schema_errors(config, schema, config_files)
    if not errors:
        with_defaults(config, schema)
        _coverage_keys_as_text(config)
        errors = semantic_errors(config, config_files) + _by_coverage_errors(config, schema, config_files)
        if offline():
            errors += _offline_errors(config)
    if errors:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(errors))
    return config


def load_config(path) -> dict:
    """A config file, checked and with the schema's defaults filled in (scripts, tests, benchmarks)."""
    return check_config(load_yaml(path), SCHEMA, [str(path)])


if __name__ == "__main__":
    try:
        for file in sys.argv[1:] or ["config/config.yaml"]:
            load_config(file)
            print(f"{file}: valid")
    except ConfigError as error:
        sys.exit(str(error))
