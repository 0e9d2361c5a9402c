"""Settings that follow the paper's code (verl): GRPO's dual clip, per-coverage batch shapes, teacher
prompts truncated as verl's reprompt, and samples seeded per prompt (not per batch, shard or rank)."""

import copy
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from selfdistill import grid
from selfdistill.backends import Sampling
from selfdistill.backends.hf import HFBackend
from selfdistill.config import ConfigError, check_config, load_yaml
from selfdistill.models import load_model, load_tokenizer
from selfdistill.train.objectives import Distillation, grpo_token_loss

from configs import CONFIG, TEMPLATES, rollout_hp

ROOT = Path(__file__).resolve().parents[1]


def test_grpo_dual_clip_bounds_a_negative_advantage_loss():
    """verl's policy loss, by hand: ratio 5, clip [0.8, 1.28], clip_ratio_c 3."""
    hp = replace(rollout_hp("grpo"), clip_low=0.2, clip_high=0.28, clip_ratio_c=3.0)
    new = torch.log(torch.tensor([[5.0, 5.0, 0.5, 0.5]], dtype=torch.float64))
    old = torch.zeros_like(new)
    for advantage, expected in (
        (-1.0, [3.0, 3.0, 0.8, 0.8]),  # max(5, 1.28) = 5, bounded by 3; max(0.5, 0.8) = 0.8 (< 3)
        (1.0, [-1.28, -1.28, -0.5, -0.5]),  # min(5, 1.28) and min(0.5, 0.8): no dual clip for A > 0
    ):
        loss = grpo_token_loss(new, old, torch.tensor([advantage], dtype=torch.float64), hp)
        torch.testing.assert_close(loss, torch.tensor([expected], dtype=torch.float64))
    plain = grpo_token_loss(new, old, torch.tensor([-1.0], dtype=torch.float64), replace(hp, clip_ratio_c=0.0))
    torch.testing.assert_close(plain, torch.tensor([[5.0, 5.0, 0.8, 0.8]], dtype=torch.float64))


def test_by_coverage_overrides_one_coverage_and_is_checked():
    config = copy.deepcopy(CONFIG)
    config["coverage"] = [8, "full"]
    config["onpolicy"]["by_coverage"] = {"full": {"prompts_per_step": 32, "mini_batch_prompts": 16}}
    full, small = grid.hyperparameters(config, "onpolicy", "full"), grid.hyperparameters(config, "onpolicy", 8)
    assert (full["prompts_per_step"], full["mini_batch_prompts"]) == (32, 16)
    assert small["prompts_per_step"] == CONFIG["onpolicy"]["prompts_per_step"]
    assert "by_coverage" not in full and "ablations" not in full

    raw = load_yaml(ROOT / "config/config.yaml")
    raw["coverage"] = [64]
    raw["methods"] = ["onpolicy", "grpo"]  # a method's cross-field checks run when the grid has it
    raw["grpo"]["by_coverage"] = {"full": {"prompts_per_step": 0, "steps": 3, "ablations": ["standard"]}}
    with pytest.raises(ConfigError) as error:
        check_config(raw)
    message = str(error.value)
    assert "unknown key(s) 'ablations' under grpo.by_coverage.full" in message  # not a training setting
    assert "grpo.by_coverage.full.prompts_per_step = 0" in message

    del raw["grpo"]["by_coverage"]["full"]["ablations"], raw["grpo"]["by_coverage"]["full"]["prompts_per_step"]
    with pytest.raises(ConfigError, match=r"grpo.by_coverage.full.steps = 3 cannot be set per coverage"):
        check_config(raw)  # it decides which checkpoint evaluations exist


def test_teacher_prompts_are_cut_from_the_right_to_fit(tiny_model_dir):
    """verl's reprompt truncation (right): a long solution loses its end, not the question; also
    cut so that prompt + completion fit the context (256 positions here), never an error."""
    model, tok = load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)
    rows = [type("Row", (), {"problem": "1+2", "answer": "3", "solution": " 1 + 2 = 3" * 8})()]

    def prepared(max_tokens, completion_length):
        hp = replace(rollout_hp("onpolicy"), teacher_prompt_max_tokens=max_tokens, n_rollouts=1)
        objective = Distillation(model, tok, hp, "solution", "standard", TEMPLATES, None)
        completion = type("C", (), {"prompt_index": 0, "token_ids": [5] * completion_length, "text": ""})()
        objective.prepare(rows, [completion], [False])
        return objective.teacher_prompts[0], objective.step_log()["teacher_truncated"]

    full, truncated = prepared(None, 10)
    assert truncated == 0 and len(full) < 256 - 10
    cut, truncated = prepared(20, 10)
    assert truncated == 1 and cut == full[:20]
    fitted, truncated = prepared(None, 256 - 30)
    assert truncated == 1 and fitted == full[:30]


def test_a_prompts_samples_do_not_depend_on_the_batch_it_is_drawn_in(tiny_model_dir):
    """Seeds per prompt index: the same prompt sampled alone or beside others, in another batch
    size, gives the same samples (what makes rollouts independent of the number of ranks)."""
    model, tok = load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)
    prompts = [[5, 6, 7], [9, 10, 11, 12, 13], [14, 15]]
    sampling = Sampling(n=3, temperature=1.0, top_p=0.9, top_k=20, max_new_tokens=10, seed=7)

    def samples(backend, chosen):
        out = backend.generate([prompts[i] for i in chosen], sampling, indices=chosen)
        return {(chosen[c.prompt_index], c.sample): c.token_ids for c in out}

    together = samples(HFBackend(model, tok, batch_size=9), [0, 1, 2])
    apart = {**samples(HFBackend(model, tok, batch_size=3), [1]), **samples(HFBackend(model, tok), [0, 2])}
    assert together == apart
    assert together[(0, 0)] != together[(0, 1)]  # each sample its own stream
    other = samples(HFBackend(model, tok), [1, 0, 2])  # another position in the batch: same index, same draw
    assert other == together
    # No two prompts share a stream (vLLM's request seed was once the call's seed for every prompt).
    assert len({sampling.prompt_seed(i) for i in range(1000)}) == 1000


def _paper_subset_file(path, problems: list[tuple[str, str, str]]):
    """A file of the paper's subsets' layout (verl's): chat prompt with the \\boxed{} instruction,
    the answer nested in reward_model, a problem_id; rows as (problem_id, problem, answer)."""
    import pandas as pd

    suffix = "\nPlease reason step by step, and put your final answer within \\boxed{}."
    pd.DataFrame(
        {
            "data_source": ["math_dapo"] * len(problems),
            "prompt": [[{"content": text + suffix, "role": "user"}] for _, text, _ in problems],
            "reward_model": [{"ground_truth": answer, "style": "rule"} for _, _, answer in problems],
            "problem_id": [pid for pid, _, _ in problems],
        }
    ).to_parquet(path)


def test_the_papers_subset_files_are_the_subsets_as_run(tmp_path):
    """config/paper_subsets.yaml's specs on files of the same layout: a 1 x 4 file is one problem, a
    repeated text under two ids stays (as seen_512 has it), and a file mapped to the wrong coverage is
    refused naming the fix."""
    import yaml

    from selfdistill.data.coverage import fixed_subset
    from selfdistill.data.loaders import load_problems

    from configs import dataset

    overlay = yaml.safe_load((ROOT / "config/paper_subsets.yaml").read_text())
    one = [("id-a", "Find $2+3$.", "5")] * 4
    two = [("id-a", "Find $2+3$.", "5"), ("id-b", "Find $x$.", "2"), ("id-c", "Find $x$.", "2")]
    _paper_subset_file(tmp_path / "seen_1x64.parquet", one)
    _paper_subset_file(tmp_path / "seen_8x8.parquet", two)
    spec = lambda name: dataset({**overlay["datasets"][name], "path": str(tmp_path / f"seen_{name[10:]}.parquet")})  # noqa: E731
    single = load_problems(spec("dapo_seen_1x64"), "dapo_seen_1x64")
    assert single["problem"].tolist() == ["Find $2+3$."] and single["answer"].tolist() == ["5"]
    assert len(fixed_subset(single, "1", 64, "dapo_seen_1x64")) == 64  # repeated to fill the batch
    three = load_problems(spec("dapo_seen_8x8"), "dapo_seen_8x8")
    assert three["problem_id"].tolist() == ["id-a", "id-b", "id-c"]  # the repeated text kept: the rows as run
    with pytest.raises(ValueError, match="holds 3 distinct training problems but is the subset of coverage 8"):
        fixed_subset(three, "8", 64, "dapo_seen_8x8")
    full = fixed_subset(three, "full", 6, "dapo_seen_8x8")  # coverage full: every problem the file holds
    assert full["problem_id"].tolist() == ["id-a", "id-b", "id-c"] * 2
    assert list(full.columns) == [*three.columns, "repeat"]  # nothing else (no old index) in the subset


def test_the_paper_subsets_overlay_plans_the_subset_files(tmp_path):
    """The overlay on paper.yaml plans: coverage 1's subset job reads its file, coverage full still draws
    from DAPO. (Apart from the test above, whose functions mutmut tests without a Snakefile.)"""
    import subprocess

    import yaml

    overlay = yaml.safe_load((ROOT / "config/paper_subsets.yaml").read_text())
    for name in ("1x64", "8x8", "64", "128", "512"):
        _paper_subset_file(tmp_path / f"seen_{name}.parquet", [(f"p{i}", f"Find {i}.", str(i)) for i in range(3)])
    overlay["datasets"] = {
        name: {**spec_, "path": str(tmp_path / Path(spec_["path"]).name)} for name, spec_ in overlay["datasets"].items()
    }
    (tmp_path / "subsets.yaml").write_text(yaml.safe_dump(overlay))
    paper = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    paper.update(coverage=[1, "full"], seeds=[0], methods=["grpo"], table1=None)
    paper["models"] = {name: model for name, model in paper["models"].items() if model is None or name == "qwen3_1_7b"}
    (tmp_path / "paper.yaml").write_text(yaml.safe_dump(paper))
    out = subprocess.run(
        ["snakemake", "-n", "-p", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path / "run"), "--configfile",
         str(tmp_path / "paper.yaml"), str(tmp_path / "subsets.yaml"), "--rerun-triggers", "input", "params"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "results/data/dapo_seen_1x64.parquet" in out.stdout and "results/data/dapo_seen_64.parquet" not in out.stdout
    assert "results/subsets/dapo/cfull_s0.parquet" in out.stdout
