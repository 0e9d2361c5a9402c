import copy

import pytest
import yaml

from selfdistill.config import ConfigError, check_config

SCHEMA = "config/schema.yaml"


def load(path="config/config.yaml"):
    return yaml.safe_load(open(path))


@pytest.mark.parametrize("path", ["config/config.yaml", "config/smoke.yaml"])
def test_shipped_configs_are_valid(path):
    check_config(load(path), SCHEMA, [path])


def test_smoke_has_the_same_shape_as_the_default():
    def shape(node):
        return {k: shape(v) for k, v in node.items()} if isinstance(node, dict) else None

    default, smoke = load(), load("config/smoke.yaml")
    assert shape(smoke) == shape(default)


def test_unknown_key_names_key_and_file(tmp_path):
    cfg = load()
    cfg["sft"]["learning_rate"] = 0.1
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError) as err:
        check_config(cfg, SCHEMA, ["config/config.yaml", str(path)])
    message = str(err.value)
    assert "'learning_rate'" in message and "under sft" in message and str(path) in message


def _edit(cfg, dotted, value):
    node = cfg
    *parents, last = dotted.split(".")
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value


DELETE = object()

BAD = [
    ("richness", [], "richness is empty"),
    ("richness", ["none", "gold"], "'gold' is not allowed"),
    ("methods", ["distill"], "'distill' is not allowed"),
    ("onpolicy.ablations", ["keep"], "'keep' is not allowed"),
    ("onpolicy.support", "half", "onpolicy.support = 'half' is not allowed"),
    ("onpolicy.eval_set", "train", "uses split 'subset'"),
    ("grpo.eval_set", "aime", "grpo.eval_set = 'aime' is not under eval_sets"),
    ("grpo.n_rollouts", 1, "grpo.n_rollouts = 1"),
    ("ablations", ["standard"], "unknown key(s) 'ablations' under (top level)"),
    ("coverage", [1, 100000], "coverage [100000] exceeds the 256 training problems"),
    ("coverage", ["8"], "coverage.0 = '8': '8' is not valid under any of the given schemas (expected: distinct training problems, or `full`"),
    ("coverage", [8, "all"], "coverage.1 = 'all'"),
    ("seeds", [], "seeds is empty"),
    ("teacher.temperature", "hot", "teacher.temperature = 'hot'"),
    ("teacher.keep", "some", "teacher.keep = 'some' is not allowed"),
    ("eval_sets.ood.dataset", "aime", "eval_sets.ood.dataset = 'aime' is not under datasets"),
    ("eval_sets.ood.n_samples", 0, "eval_sets.ood.n_samples = 0"),
    ("train_dataset", "dapo", "train_dataset = 'dapo' is not under datasets"),
    ("models.toy.source", "./no/such/model", "does not exist"),
    ("models.toy.backend", "tgi", "models.toy.backend = 'tgi' is not allowed"),
    ("sft.micro_batch_size", 5, "multiple of sft.micro_batch_size"),
    ("lora", DELETE, "is missing 'lora'"),
    ("prompts.student", "no placeholder", "prompts.student = 'no placeholder'"),
    ("datasets.toy.loader", "csv", "datasets.toy.loader = 'csv' is not allowed"),
    ("grading.timeout_s", 0, "grading.timeout_s = 0"),
]


@pytest.mark.parametrize("key, value, message", BAD, ids=[b[0] + "-" + str(i) for i, b in enumerate(BAD)])
def test_bad_values_are_refused_with_a_clear_message(key, value, message):
    cfg = copy.deepcopy(load())
    _edit(cfg, key, value)
    with pytest.raises(ConfigError) as err:
        check_config(cfg, SCHEMA, ["config/config.yaml"])
    assert message in str(err.value)
