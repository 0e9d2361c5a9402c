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


def test_hub_ids_missing_from_the_cache_are_refused_while_offline(tmp_path, monkeypatch):
    """paper.yaml names models and datasets by hub id: with the hub off and an empty cache, every one
    is reported before any job; one put in the cache (as a download would) is accepted."""
    from selfdistill.config import OFFLINE_VARIABLES

    paper = load("config/paper.yaml")
    for variable in OFFLINE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    check_config(paper, SCHEMA, ["config/paper.yaml"])  # online: nothing to check
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError) as err:
        check_config(paper, SCHEMA, ["config/paper.yaml"])
    message = str(err.value)
    assert "models.qwen3_1_7b.source = 'Qwen/Qwen3-1.7B' is a hub id, the hub is off" in message
    assert "huggingface-cli download Qwen/Qwen3-1.7B`" in message
    assert "datasets.dapo.path = " in message and "--repo-type dataset" in message

    # A cached snapshot, laid out as huggingface_hub stores one.
    repo = tmp_path / "models--Qwen--Qwen3-1.7B"
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    with pytest.raises(ConfigError) as err:
        check_config(paper, SCHEMA, ["config/paper.yaml"])
    assert "Qwen/Qwen3-1.7B'" not in str(err.value) and "Qwen/Qwen3-8B'" in str(err.value)


def test_several_training_processes_need_a_gpu_each_and_the_transformers_teacher():
    cfg = copy.deepcopy(load())
    cfg["training"] = {"processes": 2}
    check_config(cfg, SCHEMA, ["config/config.yaml"])  # on CPU: 2 ranks over gloo
    cfg["resources"] = {"train_rollouts": {"gpu": 1}}
    cfg["onpolicy"]["teacher_backend"] = "vllm"
    with pytest.raises(ConfigError) as err:
        check_config(cfg, SCHEMA, ["config/config.yaml"])
    message = str(err.value)
    assert "resources.train_rollouts.gpu = 1 but training.processes = 2" in message
    assert "training.processes = 2 with onpolicy.teacher_backend vllm" in message
