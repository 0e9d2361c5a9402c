import copy
from pathlib import Path

import pytest
import yaml

from selfdistill.config import COMMAND_LINE, ConfigError, check_config, compose, load_config

REPO = Path(__file__).resolve().parents[1]
DEFAULT = "config/config.yaml"
# Every overlay shipped, with the overlays it goes on top of (all on top of config/config.yaml).
OVERLAYS = {
    "config/smoke.yaml": (),
    "config/organism.yaml": (),
    "config/chain.yaml": (),
    "config/never_checking_teacher.yaml": (),
    "config/machine_draws.yaml": (),
    "config/dose_response.yaml": (),
    "config/draws.yaml": (),
    "config/paper.yaml": (),
    "config/paper_lora.yaml": ("config/paper.yaml",),
    "config/paper_subsets.yaml": ("config/paper.yaml",),
    "config/organism_one_seed.yaml": ("config/organism.yaml",),
}


def load_shipped(path, tmp_path, monkeypatch) -> dict:
    """A shipped config, checked, run from a directory with the local files the overlays name (the
    paper's subsets, which a user fetches by hand; empty stand-ins here)."""
    (tmp_path / "config").symlink_to(REPO / "config")
    (tmp_path / "data/paper_subsets").mkdir(parents=True)
    for name in ("1x64", "8x8", "64", "128", "512"):
        (tmp_path / f"data/paper_subsets/seen_{name}.parquet").touch()
    monkeypatch.chdir(tmp_path)
    return load_config(*OVERLAYS.get(path, ()), *([path] if path != DEFAULT else []))


def load(path=DEFAULT):
    return yaml.safe_load(open(path))


def test_every_config_is_the_default_or_an_overlay_on_it():
    assert {str(p.relative_to(REPO)) for p in (REPO / "config").glob("*.yaml")} == {DEFAULT, *OVERLAYS}


@pytest.mark.parametrize("path", [DEFAULT, *OVERLAYS])
def test_shipped_configs_are_valid(path, tmp_path, monkeypatch):
    load_shipped(path, tmp_path, monkeypatch)


MISSING = object()


def redundant_keys(overlay: dict, base: dict, schema: dict, path=()) -> list[str]:
    """Keys `overlay` sets to the value they already have: the base's (the composed, filled config
    below it), or for a key the base lacks, its declared default; and nulls that delete nothing."""
    from selfdistill.config import subschema

    found = []
    for key, value in overlay.items():
        here = (*path, key)
        before = base.get(key, MISSING) if isinstance(base, dict) else MISSING
        if before is MISSING:
            before = subschema(schema, here).get("default", MISSING)
        if value is None:
            if before is MISSING:
                found.append(f"{'.'.join(map(str, here))}: null deletes nothing")
        elif isinstance(value, dict) and value != before:
            found += redundant_keys(value, before if isinstance(before, dict) else {}, schema, here)
        elif value == before:
            found.append(f"{'.'.join(map(str, here))} = {value!r}")
    return found


@pytest.mark.parametrize("path", [DEFAULT, *OVERLAYS])
def test_no_config_sets_a_key_to_the_value_its_base_has(path):
    """An overlay holds only what differs from the configs below it, and config.yaml only what
    differs from the declared defaults: a copy would silently keep an old value when the base changes."""
    from selfdistill.settings import workflow

    base = {} if path == DEFAULT else load_config(*OVERLAYS[path])
    assert redundant_keys(load(path), base, workflow.schema()) == []


def test_the_redundancy_check_finds_a_copied_value():
    """Negative control: keys set to the base's value, or to a declared default, and a null deleting nothing."""
    from selfdistill.settings import workflow

    overlay = {
        "teacher": {"n_samples": 4, "top_k": 0},
        "models": {"toy": {"backend": "hf"}, "new": {"source": "m", "dtype": "float32"}, "gone": None},
        "seeds": [0, 1],
    }
    assert redundant_keys(overlay, load_config(), workflow.schema()) == [
        "teacher.n_samples = 4",
        "teacher.top_k = 0",
        "models.toy.backend = 'hf'",
        "models.new.dtype = 'float32'",
        "models.gone: null deletes nothing",
    ]


def test_an_overlay_merges_like_snakemake_and_null_deletes(tmp_path):
    """compose() merges as Snakemake merges --configfile files (its own update_config is the
    reference); then a null deletes the key, and a deleted setting takes its default."""
    from snakemake.utils import update_config

    from selfdistill.config import merge

    overlay = {
        "models": {"toy_null": None, "extra": {"source": "toy"}},
        "eval_sets": {"ood": {"temperature": 0.9}},
        "toy_pretrain": {"traces": {"p_wrong_guess": None}},
        "richness": ["solution"],
        "organism": None,
    }
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    reference = load()
    update_config(reference, copy.deepcopy(overlay))
    assert merge(load(), overlay) == reference == compose(path)
    cfg = load_config(path)
    assert set(cfg["models"]) == set(load()["models"]) - {"toy_null"} | {"extra"} and "organism" not in cfg
    assert cfg["eval_sets"]["ood"]["temperature"] == 0.9 and cfg["eval_sets"]["ood"]["n_problems"] == 64
    assert cfg["toy_pretrain"]["traces"]["p_wrong_guess"] == 0.4  # the declared default, not config.yaml's 0.3
    assert cfg["richness"] == ["solution"]  # lists replace


def test_a_bare_null_world_is_refused_not_read_as_a_deletion(tmp_path):
    """YAML reads `world: null` as a null, which deletes the key: the model would silently be
    pretrained in the default world (guess_check). The null world must be written in quotes."""
    path = tmp_path / "overlay.yaml"
    path.write_text("models:\n  toy_null:\n    toy_pretrain: {traces: {world: null}}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}: models.toy_null.toy_pretrain.traces.world = null deletes the key" in str(err.value)
    assert 'world: "null" (in quotes)' in str(err.value)
    path.write_text('models:\n  toy_null:\n    toy_pretrain: {traces: {world: "null"}}\n')
    assert load_config(path)["models"]["toy_null"]["toy_pretrain"]["traces"]["world"] == "null"


def test_a_method_section_is_required_only_when_the_method_runs():
    cfg = load()
    del cfg["sft"], cfg["grpo"]
    cfg["methods"] = ["onpolicy"]
    check_config(cfg)
    assert "sft" not in cfg  # not filled in either
    cfg = load()
    del cfg["sft"]
    cfg["methods"] = ["sft", "onpolicy"]
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    assert "config/config.yaml: (top level) is missing 'sft' (methods lists sft); add it" in str(err.value)


@pytest.mark.parametrize("path", [DEFAULT, *OVERLAYS])
def test_every_model_slice_builds_the_section_model_jobs_read(path, tmp_path, monkeypatch):
    """A toy model's pretraining override is the pretraining rule's, not the model jobs': it once
    reached evaluation jobs, which refused the unknown key after 17 minutes of the main job."""
    from selfdistill.settings.core import build
    from selfdistill.settings.models import ModelConfig, model_section

    cfg = load_shipped(path, tmp_path, monkeypatch)
    for model in cfg["models"]:
        for job in ("generation", "training"):
            assert build(ModelConfig, model_section(cfg, model, job)).source == cfg["models"][model]["source"]


def test_a_toy_model_overrides_the_pretraining_seed_and_traces_only_where_it_says():
    from selfdistill.toy_worlds import gated_models, toy_pretrain_spec, toy_world, world_pairs

    cfg = load_config()
    cfg["models"]["toy_null"]["toy_pretrain"]["seed"] = 7
    base, null = toy_pretrain_spec(cfg, "toy"), toy_pretrain_spec(cfg, "toy_null")
    assert base["traces"]["world"] == "guess_check" and null["traces"]["world"] == "null"
    assert null["seed"] == 7 and base["seed"] == cfg["toy_pretrain"]["seed"]
    own = ("world", "null_check")  # the null model's own keys
    assert null["traces"]["null_check"] == "chain" and base["traces"]["null_check"] == "guess"
    assert {k: v for k, v in null["traces"].items() if k not in own} == {
        k: v for k, v in base["traces"].items() if k not in own
    }
    assert null["max_operand"] == cfg["datasets"]["toy"]["toy"]["max_operand"]
    assert gated_models(cfg) == list(cfg["models"]) and toy_world(cfg, "toy_null") == "null"
    others = [("toy_s1", "toy_null_s1"), ("toy_s2", "toy_null_s2")]
    assert world_pairs(cfg) == others  # pretrained with another seed: not the null world of `toy`
    cfg["models"]["toy_null"]["toy_pretrain"]["seed"] = cfg["toy_pretrain"]["seed"]
    assert world_pairs(cfg) == [("toy", "toy_null"), *others]
    cfg["models"]["toy_null"]["toy_pretrain"]["traces"]["null_check"] = "guess"  # shapes only the null world
    assert world_pairs(cfg) == [("toy", "toy_null"), *others]
    cfg["models"]["toy_null"]["toy_pretrain"]["traces"]["p_check_guided"] = 0.3  # another teacher: no pair
    assert world_pairs(cfg) == others
    organism = load_config("config/organism.yaml")
    assert world_pairs(organism) == [("toy", "toy_null"), *others]
    del cfg["organism"]
    assert gated_models(cfg) == []


def test_pretrained_draws_are_models_of_one_world_differing_only_in_the_seed():
    from selfdistill.toy_worlds import pretrained_draws

    def expected(n_draws):
        return {
            (design if s == 0 else f"{design}_s{s}"): {
                "world": world,
                "design": design,
                "seed": s,
                "micro_batch_size": 16,
            }
            for world, design in (("guess_check", "toy"), ("null", "toy_null"))
            for s in range(n_draws)
        }

    default = load_config()
    assert pretrained_draws(default) == expected(3)
    assert pretrained_draws(load_config("config/draws.yaml")) == expected(6)
    # organism.yaml: the doses share seed 0 with toy but not its p_check: designs of their own, of one
    assert pretrained_draws(load_config("config/organism.yaml")) == expected(3)
    del default["models"]["toy_s1"], default["models"]["toy_s2"]
    assert set(pretrained_draws(default)) == {"toy_null", "toy_null_s1", "toy_null_s2"}  # one draw: no design
    # Another micro-batch split of one seed is another draw of the design (the floating-point order differs).
    machines = pretrained_draws(load_config("config/draws.yaml", "config/machine_draws.yaml"))
    assert {m: d for m, d in machines.items() if d["seed"] == 0 and d["world"] == "guess_check"} == {
        model: {"world": "guess_check", "design": "toy", "seed": 0, "micro_batch_size": split}
        for model, split in (("toy", 16), ("toy_mb8", 8), ("toy_mb32", 32))
    }
    assert len(machines) == 14


def test_unknown_key_names_key_and_file(tmp_path):
    cfg = load()
    cfg["sft"]["learning_rate"] = 0.1
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError) as err:
        check_config(cfg, [DEFAULT, str(path)])
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
    ("eval_sets.ood.split", "subset", "uses split 'subset'"),
    ("onpolicy.eval_set", "aime", "onpolicy.eval_set = 'aime' is not under eval_sets"),
    ("grpo.n_rollouts", 1, "grpo.n_rollouts = 1"),
    ("ablations", ["standard"], "unknown key(s) 'ablations' under (top level)"),
    ("coverage", [1, 100000], "has [100000], more than the 256 training problems"),
    (
        "coverage",
        ["8"],
        "coverage.0 = '8': '8' is not valid under any of the given schemas "
        "(expected: distinct training problems, or `full`",
    ),
    ("coverage", [8, "all"], "coverage.1 = 'all'"),
    ("seeds", [], "seeds is empty"),
    ("teacher.temperature", "hot", "teacher.temperature = 'hot'"),
    ("teacher.keep", "some", "teacher.keep = 'some' is not allowed"),
    ("eval_sets.ood.dataset", "aime", "eval_sets.ood.dataset = 'aime' is not under datasets"),
    ("eval_sets.ood.n_samples", 0, "eval_sets.ood.n_samples = 0"),
    ("train_dataset", "dapo", "train_dataset = 'dapo' is not under datasets"),
    ("models.toy.source", "./no/such/model", "does not exist"),
    ("models.toy.backend", "tgi", "models.toy.backend = 'tgi' is not allowed"),
    ("sft.micro_batch_size", 5, "sft.micro_batch_size = 5 does not divide sft.batch_size = 16"),
    ("lora", DELETE, "is missing 'lora'"),
    ("prompts.student", "no placeholder", "prompts.student = 'no placeholder'"),
    ("datasets.toy.loader", "csv", "datasets.toy.loader = 'csv' is not allowed"),
    ("grading.timeout_s", 0, "grading.timeout_s = 0"),
    ("eval_sets.ood_checks_on.epistemic", "banned", "eval_sets.ood_checks_on.epistemic = 'banned' must be forced"),
    ("organism.ood_on", "ood_forced", "organism.ood_on = 'ood_forced' is not an eval set"),
    ("eval_sets.ood_checks_on.n_problems", 32, "organism.ood_on = 'ood_checks_on' samples other problems"),
    ("eval_sets.test_checks_off.temperature", 1.0, "organism.in_domain_on = 'test_checks_on' samples other"),
    ("models.toy_null.toy_pretrain.traces.world", "flat", "traces.world = 'flat' is not allowed"),
]


@pytest.mark.parametrize("key, value, message", BAD, ids=[b[0] + "-" + str(i) for i, b in enumerate(BAD)])
def test_bad_values_are_refused_with_a_clear_message(key, value, message):
    cfg = copy.deepcopy(load())
    _edit(cfg, key, value)
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    assert message in str(err.value)


def test_hub_ids_missing_from_the_cache_are_refused_while_offline(tmp_path, monkeypatch):
    """paper.yaml names models and datasets by hub id: with the hub off and an empty cache, every one
    is reported before any job; one put in the cache (as a download would) is accepted."""
    from selfdistill.facts import OFFLINE_VARIABLES

    files = [DEFAULT, "config/paper.yaml"]
    paper = compose("config/paper.yaml")
    for variable in OFFLINE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    check_config(copy.deepcopy(paper), files)  # online: nothing to check
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError) as err:
        check_config(copy.deepcopy(paper), files)
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
        check_config(copy.deepcopy(paper), files)
    assert "Qwen/Qwen3-1.7B'" not in str(err.value) and "Qwen/Qwen3-8B'" in str(err.value)


def test_several_training_processes_need_a_gpu_each_and_the_transformers_teacher():
    cfg = copy.deepcopy(load())
    cfg["training"] = {"processes": 2}
    check_config(cfg)  # on CPU: 2 ranks over gloo
    cfg["resources"] = {"train_rollouts": {"gpu": 1}}
    cfg["onpolicy"]["teacher_backend"] = "vllm"
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    message = str(err.value)
    assert (
        "resources.train_rollouts.gpu = 1 differs from training.processes = 2: each rank needs its own GPU" in message
    )
    assert "training.processes = 2 needs one vLLM engine per rank with onpolicy.teacher_backend vllm" in message


# Accepted before (failing hours later, or silently wrong); each must be refused before any job.
BAD_COMBINATIONS = [
    (
        {"onpolicy.support": "topk", "onpolicy.topk": 1000},
        "onpolicy.topk = 1000 exceeds model 'toy''s vocabulary of 400",
    ),
    (
        {"eval_sets.ood.max_new_tokens": 512},
        "eval_sets.ood.max_new_tokens = 512 leaves no room for the prompt in model 'toy''s context of 512 positions",
    ),
    ({"teacher.max_new_tokens": 600}, "teacher.max_new_tokens = 600 leaves no room"),
    (
        {"eval_sets.ood.split": "dev"},
        "eval_sets.ood.split = 'dev' is not a split of dataset 'toy' (its splits: ood, test, train)",
    ),
    (
        {"datasets.toy.toy.n_ood": 0},
        "eval_sets.ood.split = 'ood' is not a split of dataset 'toy' (its splits: test, train)",
    ),
    ({"toy_pretrain.arch.num_kv_heads": 3}, "toy_pretrain.arch.num_kv_heads = 3 does not divide num_heads = 4"),
    (
        {"prompts.teacher_solution": "Correct solution:\n{solution}\nSolve it."},
        "lacks {student} (the teacher would never see the question)",
    ),
    (
        {"prompts.teacher_answer": "{student} {answer} {foo}"},
        "has unknown placeholder(s) ['foo'], which would be sent literally",
    ),
    (
        {"prompts.student": "{question} {problem}"},
        "prompts.student = '{question} {problem}' has unknown placeholder(s) ['question']",
    ),
    (
        {"lora.target_modules": ["q_proj", "qproj"]},
        "lora.target_modules = ['q_proj', 'qproj'] has ['qproj'], matching no layer",
    ),
    ({"datasets.toy.toy.train_terms": [4, 3]}, "datasets.toy.toy.train_terms = [4, 3] is an empty range"),
    ({"toy_pretrain.terms": [6, 3]}, "toy_pretrain.terms = [6, 3] is an empty range"),
    (
        {"onpolicy.alpha": 1, "onpolicy.ablations": ["standard", "suppress"]},
        "onpolicy.alpha = 1 makes the loss reverse KL(student‖target), infinite under the `suppress`",
    ),
    ({"onpolicy.support": "sampled"}, "onpolicy.alpha = 0.5 is ignored by support 'sampled'"),
    (
        {"rollouts": {"backend": "vllm", "lora_sync": "merge"}, "training": {"processes": 2}},
        "rollouts.lora_sync = 'merge' would merge the adapter into weights sharded across training.processes ranks",
    ),
    (
        {
            "models.toy.backend": "vllm",
            "onpolicy.teacher_backend": "vllm",
            "onpolicy.support": "teacher_topk",
            "onpolicy.temperature": 1.0,
            "rollouts": {"lora_sync": "merge", "sleep": False},
        },
        "onpolicy.teacher_backend = 'vllm' scores the frozen teacher with the rollout engine's base weights",
    ),
    (
        {
            "models.toy.backend": "vllm",
            "onpolicy.teacher_backend": "vllm",
            "onpolicy.support": "teacher_topk",
            "onpolicy.temperature": 1.0,
        },
        "rollouts.sleep = True puts the rollout engine to sleep while the trainer steps",
    ),
]


@pytest.mark.parametrize("edits, message", BAD_COMBINATIONS, ids=[m[:40] for _, m in BAD_COMBINATIONS])
def test_bad_combinations_are_refused_naming_file_key_value_and_fix(tmp_path, edits, message):
    cfg = copy.deepcopy(load())
    for key, value in edits.items():
        _edit(cfg, key, value)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError) as err:
        check_config(cfg, [str(path)])
    lines = str(err.value).splitlines()[1:]
    assert any(message in line for line in lines), str(err.value)
    assert all(line.startswith(f"  - {path}: ") for line in lines), str(err.value)  # every message names the file
    assert all("; " in line for line in lines)  # ... and says what to do


def test_accepted_combinations_stay_accepted():
    cfg = copy.deepcopy(load())
    cfg["onpolicy"].update(support="sampled", alpha=1)  # the sampled-token estimate bounds the suppress target
    check_config(cfg)
    cfg = copy.deepcopy(load())
    cfg["onpolicy"].update(alpha=1, ablations=["standard", "preserve"])
    check_config(cfg)


def test_declared_defaults_are_filled_before_the_checks():
    cfg = load()
    assert "max_answer_chars" not in cfg["grading"] and "training" not in cfg
    check_config(cfg)
    assert cfg["grading"]["max_answer_chars"] == 1000
    assert cfg["training"] == {"finetune": "lora", "gradient_checkpointing": False, "loss_chunk": 1024, "processes": 1}
    assert cfg["models"]["toy"]["vllm"] == {} and cfg["onpolicy"]["teacher_backend"] == "hf"


def test_unreadable_yaml_names_file_and_line(tmp_path):
    from selfdistill.config import load_yaml

    path = tmp_path / "broken.yaml"
    path.write_text("models:\n  toy: {source: toy\nrichness: [none]\n")
    with pytest.raises(ConfigError) as err:
        load_yaml(path)
    assert f"{path}, line 3, column" in str(err.value)


def test_the_command_line_check_reports_and_exits(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"onpolicy": {"alpha": 1, "ablations": ["suppress"]}}))
    check = [sys.executable, "-m", "selfdistill.config"]
    valid = subprocess.run([*check, "config/paper.yaml", "config/paper_lora.yaml"], capture_output=True, text=True)
    assert valid.returncode == 0, valid.stderr
    assert "config/config.yaml + config/paper.yaml + config/paper_lora.yaml: valid" in valid.stdout
    out = subprocess.run([*check, str(path)], capture_output=True, text=True)
    assert out.returncode == 1 and f"{path}: onpolicy.alpha = 1" in out.stderr


def test_toy_module_names_match_the_toy_model(tiny_model_dir):
    """LoRA's target_modules are checked against TOY_MODULES before the toy model exists."""
    from selfdistill.facts import TOY_MODULES
    from selfdistill.models import load_model

    model = load_model(tiny_model_dir)
    linear = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if type(m).__name__ == "Linear"}
    assert linear == TOY_MODULES


def test_a_local_model_is_checked_from_its_files(tiny_model_dir):
    """A model directory's vocabulary, context and layers come from its config and weight files."""
    from selfdistill.facts import model_facts

    facts = model_facts({"source": tiny_model_dir, "backend": "hf", "vllm": {}}, {})
    assert facts["context"] == 256 and facts["vocab"] > 100 and "q_proj" in facts["modules"]
    cfg = copy.deepcopy(load())
    cfg["models"]["toy"] = {"source": tiny_model_dir}
    cfg["lora"]["target_modules"] = ["q_proj", "c_attn"]
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    assert "has ['c_attn'], matching no layer of model 'toy'" in str(err.value)
    assert "max_new_tokens = 160" not in str(err.value)  # 160 fits in 256 positions


def test_a_local_jsonl_training_set_with_the_toy_model_plans(tmp_path):
    """A toy model pretrained beside a local JSONL training set: a valid config, so it must plan."""
    import subprocess

    rows = [{"problem": f"Compute {a}+{b}+1.", "answer": str(a + b + 1)} for a in range(2, 9) for b in range(2, 9)]
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(__import__("json").dumps(r) for r in rows) + "\n")
    cfg = load()
    cfg["datasets"]["mine"] = {"loader": "jsonl", "path": str(data)}
    cfg["train_dataset"] = "mine"
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = subprocess.run(
        ["snakemake", "-n", "-s", "Snakefile", "-d", str(tmp_path / "run"), "--configfile", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "pretrain_toy" in out.stdout


def test_a_value_set_with_snakemake_config_is_named_as_from_the_command_line(tmp_path):
    """`--config seeds=[0]` gives seeds ['0'] (Snakemake reads list items as text): the error names the
    command line and says to use an overlay, not the last config file, which never set the key."""
    import subprocess

    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("coverage: [8]\n")
    out = subprocess.run(
        ["snakemake", "-n", "-s", "Snakefile", "-d", str(tmp_path / "run"), "--configfile", str(overlay)]
        + ["--config", "seeds=[0]"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    printed = out.stdout + out.stderr
    assert out.returncode != 0
    assert f"{COMMAND_LINE}: seeds.0 = '0'" in printed, printed[-2000:]
    assert f"{overlay}: seeds" not in printed
