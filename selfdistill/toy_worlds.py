"""The toy worlds a config runs, read from its models (what the rules need at parse time): each
toy model's resolved pretraining, its world, the models the gate checks, and the between-world pairs."""

from __future__ import annotations

import json


def toy_pretrain_spec(config: dict, model: str) -> dict:
    """A toy model's pretraining: `toy_pretrain`, with the model's own seed and traces on top and
    its largest operand resolved (set there, else the training dataset's, a toy one)."""
    own = config["models"][model].get("toy_pretrain", {})
    train = config["datasets"][config["train_dataset"]]
    max_operand = train["toy"]["max_operand"] if train["loader"] == "toy" else 9
    spec = {"max_operand": max_operand, **config["toy_pretrain"], **own}
    spec["traces"] = {**config["toy_pretrain"]["traces"], **own.get("traces", {})}
    return spec


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
        # null_check only shapes the null world: it does not set a pair apart.
        return json.dumps({**spec, "traces": {**spec["traces"], "world": None, "null_check": None}}, sort_keys=True)

    models = gated_models(config)
    return [
        (check, null)
        for check in models
        if toy_world(config, check) == "guess_check"
        for null in models
        if toy_world(config, null) == "null" and rest(check) == rest(null)
    ]


def pretrained_draws(config: dict) -> dict[str, dict]:
    """Gated toy models that are draws of one design: the same world and pretraining but for the
    seed and the micro-batch split (which changes only the floating-point order, as another machine
    does), where a design has two draws or more. model -> {world, design (its model of the lowest
    seed, the configured split first), seed, micro_batch_size}."""
    designs: dict[str, dict[str, tuple[int, int]]] = {}
    for model in gated_models(config):
        spec = toy_pretrain_spec(config, model)
        design = json.dumps({**spec, "seed": None, "micro_batch_size": None}, sort_keys=True)
        designs.setdefault(design, {})[model] = (spec["seed"], spec["micro_batch_size"])
    split = (config.get("toy_pretrain") or {}).get("micro_batch_size")  # no toy_pretrain: no toy draws
    return {
        model: {
            "world": toy_world(config, model),
            "design": min(draws, key=lambda m: (draws[m][0], draws[m][1] != split, draws[m][1])),
            "seed": seed,
            "micro_batch_size": micro_batch_size,
        }
        for draws in designs.values()
        if len(draws) >= 2
        for model, (seed, micro_batch_size) in draws.items()
    }
