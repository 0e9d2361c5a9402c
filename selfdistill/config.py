"""Config checks run when the workflow starts, before any job: one clear message per problem."""

from __future__ import annotations

import os
from pathlib import Path

import jsonschema
import yaml


class ConfigError(ValueError):
    pass


def load_schema(path) -> dict:
    return yaml.safe_load(Path(path).read_text())


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
    expected = f" (expected: {error.schema['description']})" if isinstance(error.schema, dict) and "description" in error.schema else ""
    return f"{_where(path, config_files)}: {key} = {error.instance!r}: {error.message}{expected}; fix this value"


def schema_errors(config: dict, schema: dict, config_files=()) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [_describe(e, config_files) for e in sorted(validator.iter_errors(config), key=lambda e: list(e.path))]


OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


def offline() -> bool:
    """Whether the Hugging Face libraries are told not to reach the hub."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_VARIABLES)


def in_hub_cache(repo_id: str, repo_type: str) -> bool:
    """Whether a hub repository has a snapshot in the local cache (what offline loading can use)."""
    from huggingface_hub import snapshot_download

    cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.expanduser("~/.cache/huggingface"), "hub")
    try:
        snapshot_download(repo_id, repo_type=repo_type, cache_dir=cache, local_files_only=True)
        return True
    except Exception:  # not cached (LocalEntryNotFoundError), or not a valid repo id
        return False


def _offline_errors(config: dict) -> list[str]:
    """Hub ids that offline loading will not find: caught here rather than in a job hours later."""
    wanted = [(f"models.{name}.source", m["source"], "model") for name, m in config["models"].items()
              if m["source"] != "toy" and not Path(m["source"]).exists()]
    wanted += [(f"datasets.{name}.path", d["path"], "dataset") for name, d in config["datasets"].items()
               if d["loader"] == "hf" and "path" in d and not Path(d["path"]).exists()]
    return [
        f"{key} = {repo_id!r} is a hub id, the hub is off ({'/'.join(OFFLINE_VARIABLES)}) and it is not in the local "
        f"cache; download it on a machine with internet (`huggingface-cli download {repo_id}"
        f"{' --repo-type dataset' if kind == 'dataset' else ''}`) or set {key} to a local directory"
        for key, repo_id, kind in wanted
        if not in_hub_cache(repo_id, kind)
    ]


def semantic_errors(config: dict) -> list[str]:
    """What the schema cannot express: references between sections, sizes, paths."""
    errors = []
    datasets = config["datasets"]
    if config["train_dataset"] not in datasets:
        errors.append(f"train_dataset = {config['train_dataset']!r} is not under datasets; add it or fix the name")
    for name, spec in datasets.items():
        if spec["loader"] == "toy" and "toy" not in spec:
            errors.append(f"datasets.{name}: loader 'toy' needs a `toy:` block")
        if spec["loader"] != "toy" and "path" not in spec:
            errors.append(f"datasets.{name}: loader {spec['loader']!r} needs `path`")
        if spec["loader"] in ("parquet", "jsonl") and "path" in spec and not Path(spec["path"]).exists():
            errors.append(f"datasets.{name}.path = {spec['path']!r} does not exist; fix the path")
    train = datasets.get(config["train_dataset"], {})
    if train.get("loader") == "toy":
        n_train = train["toy"]["n_train"]
        too_big = [c for c in config["coverage"] if c != "full" and c > n_train]
        if too_big:
            errors.append(
                f"coverage {too_big} exceeds the {n_train} training problems of dataset "
                f"{config['train_dataset']!r}; lower coverage or raise datasets.{config['train_dataset']}.toy.n_train"
            )
    for name, es in config["eval_sets"].items():
        if es["dataset"] not in datasets:
            errors.append(f"eval_sets.{name}.dataset = {es['dataset']!r} is not under datasets; add it or fix the name")
    for method in ("onpolicy", "grpo"):
        eval_set = config[method]["eval_set"]
        if eval_set not in config["eval_sets"]:
            errors.append(f"{method}.eval_set = {eval_set!r} is not under eval_sets; add it or fix the name")
        elif config["eval_sets"][eval_set]["split"] == "subset":
            errors.append(f"{method}.eval_set = {eval_set!r} uses split 'subset'; pick a fixed split such as ood")
    onpolicy = config["onpolicy"]
    if onpolicy.get("teacher_backend", "hf") == "vllm":
        needs = {"teacher": "frozen", "support": "teacher_topk", "temperature": 1.0}
        for key, value in needs.items():
            if onpolicy[key] != value:
                errors.append(f"onpolicy.{key} = {onpolicy[key]!r}: teacher_backend vllm scores the frozen initial "
                              f"model's top-k log-probs at temperature 1; set onpolicy.{key}: {value} or teacher_backend: hf")
        for name, model in config["models"].items():
            if model.get("backend", "hf") != "vllm":
                errors.append(f"models.{name}.backend = {model.get('backend', 'hf')!r}: onpolicy.teacher_backend vllm "
                              f"needs vllm-backed models; set models.{name}.backend: vllm or onpolicy.teacher_backend: hf")
    processes = config.get("training", {}).get("processes", 1)
    if processes > 1:
        if onpolicy.get("teacher_backend", "hf") == "vllm":
            errors.append(f"training.processes = {processes} with onpolicy.teacher_backend vllm: one vLLM engine per "
                          "rank is not supported; set teacher_backend: hf or training.processes: 1")
        for rule in ("train_sft", "train_rollouts"):
            gpus = int(config.get("resources", {}).get(rule, {}).get("gpu", 0))
            if gpus and gpus != processes:
                errors.append(f"resources.{rule}.gpu = {gpus} but training.processes = {processes}: each rank needs "
                              f"its own GPU; set both to the same number")
    for name, model in config["models"].items():
        if model["source"] == "toy":
            if "toy_pretrain" not in config:
                errors.append(f"models.{name}: source 'toy' needs a `toy_pretrain:` block")
        elif model["source"].startswith((".", "/")) and not Path(model["source"]).exists():
            errors.append(f"models.{name}.source = {model['source']!r} is a path that does not exist; fix it")
    if "table1" in config:
        t1 = config["table1"]
        if t1["dataset"] not in datasets:
            errors.append(f"table1.dataset = {t1['dataset']!r} is not under datasets; add it or fix the name")
        if t1["correct_range"][1] > t1["sampling"]["n_samples"]:
            errors.append(f"table1.correct_range {t1['correct_range']} exceeds table1.sampling.n_samples; lower it")
        if "regen" in t1["richness"] and "solution" not in t1["richness"]:
            errors.append("table1.richness has regen but not solution (regen's context comes from it); add solution")
        if t1["correct_range"][0] > t1["correct_range"][1]:
            errors.append(f"table1.correct_range = {t1['correct_range']} is empty; use [low, high] with low <= high")
    if config["sft"]["batch_size"] % config["sft"]["micro_batch_size"]:
        errors.append("sft.batch_size must be a multiple of sft.micro_batch_size; change one of them")
    if offline():
        errors += _offline_errors(config)
    return errors


def check_config(config: dict, schema_path, config_files=()) -> None:
    errors = schema_errors(config, load_schema(schema_path), config_files)
    if not errors:
        errors = semantic_errors(config)
    if errors:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(errors))
