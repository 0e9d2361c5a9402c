"""What a model or dataset can take, read from local files only (nothing downloaded), and the
checks of a config against it: vocabulary, context, LoRA's layer names, a dataset's splits, hub ids
missing from the cache while the hub is off."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from selfdistill.grid import ROLLOUT_METHODS
from selfdistill.settings.models import is_missing_path

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")

# The linear layers of the toy model (a Qwen2; tests/test_config.py checks this list against the
# built model): LoRA's target_modules for it are checked before the model exists.
TOY_MODULES = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"})


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


def dataset_splits(spec: dict) -> set[str] | None:
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


def _model_fit_errors(name: str, model: dict, config: dict, error) -> None:
    """The config against what model `name` can take: vocabulary, context, LoRA's layer names."""
    facts = model_facts(model, config)
    onpolicy = config.get("onpolicy")
    if onpolicy and "vocab" in facts and onpolicy["support"] in ("topk", "teacher_topk"):
        if onpolicy["topk"] > facts["vocab"]:
            error(
                "onpolicy.topk",
                onpolicy["topk"],
                f"exceeds model {name!r}'s vocabulary of {facts['vocab']} ids",
                f"lower it below {facts['vocab']} or use support: full",
            )
    if "context" in facts:
        for key, budget in _sampling_budgets(config):
            if budget >= facts["context"]:
                error(
                    key,
                    budget,
                    f"leaves no room for the prompt in model {name!r}'s context of "
                    f"{facts['context']} positions ({facts['context_key']})",
                    "lower it, or give the model a longer context",
                )
    if "modules" in facts and config["training"]["finetune"] == "lora":
        unmatched = [t for t in config["lora"]["target_modules"] if t.rsplit(".", 1)[-1] not in facts["modules"]]
        if unmatched:
            error(
                "lora.target_modules",
                config["lora"]["target_modules"],
                f"has {unmatched}, matching no layer of model {name!r} (it has {', '.join(sorted(facts['modules']))})",
                "remove or rename them (only the others would train)",
            )


def check(config: dict, error) -> None:
    """The config against the eval sets' datasets and the models, where their files say enough."""
    for name, es in config["eval_sets"].items():
        if es["dataset"] in config["datasets"] and es["split"] != "subset":
            splits = dataset_splits(config["datasets"][es["dataset"]])
            if splits is not None and es["split"] not in splits:
                error(
                    f"eval_sets.{name}.split",
                    es["split"],
                    f"is not a split of dataset {es['dataset']!r} "
                    f"(its splits: {', '.join(sorted(splits)) or 'none with problems'})",
                    "use one of them, or 'subset'",
                )
    for name, model in config["models"].items():
        if model["source"] == "toy" and "toy_pretrain" not in config or is_missing_path(model["source"]):
            continue  # reported by the models' own check
        _model_fit_errors(name, model, config, error)


def offline_errors(config: dict) -> list[str]:
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
