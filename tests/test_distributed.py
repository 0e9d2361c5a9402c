"""Training as 2 ranks (`training.processes: 2`: accelerate launch, FSDP2 over gloo on CPU) gives
what one process gives: the same per-step log and the same trained weights."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from test_progress import scalars

WORKER = "tests/distributed_worker.py"


def _train(tmp_path, name, launcher=(), on_gpus=False, **args):
    out = tmp_path / name
    out.mkdir()
    args = {"out": str(out), "steps": 2, "state": None, **args}
    cmd = [sys.executable, *launcher, WORKER, json.dumps(args)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=_env(on_gpus))
    assert done.returncode == 0, done.stderr[-3000:]
    weights = next((out / "model").glob("*.safetensors"))
    return json.loads((out / "rows.json").read_text()), load_file(weights)


def shares(tmp_path, name) -> list:
    """Per rank, the prompt indices it sampled at each step."""
    files = sorted((tmp_path / name).glob("shares*.json"))
    return [json.loads(f.read_text()) for f in files]


def _env(on_gpus=False):
    """Ranks on CPU (gloo) unless asked for GPUs: 2 ranks need 2 GPUs, a machine may have one."""
    return {**os.environ, **({} if on_gpus else {"CUDA_VISIBLE_DEVICES": ""})}


def _assert_same(one, two, keys):
    (rows_1, weights_1), (rows_2, weights_2) = one, two
    assert len(rows_1) == len(rows_2) == 2
    for r1, r2 in zip(rows_1, rows_2, strict=True):
        for key in keys:
            assert r2[key] == pytest.approx(r1[key], rel=1e-4, abs=1e-6), key
    assert weights_1.keys() == weights_2.keys()
    for name, w in weights_1.items():
        torch.testing.assert_close(weights_2[name], w, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "method, finetune, teacher",
    [("sft", "lora", None), ("onpolicy", "full", "frozen"), ("onpolicy", "lora", "ema"), ("grpo", "lora", None)],
)
def test_two_ranks_train_as_one_process(tiny_model_dir, tmp_path, method, finetune, teacher):
    common = {"model_dir": tiny_model_dir, "method": method, "finetune": finetune, "teacher": teacher}
    one = _train(tmp_path, "one", processes=1, **common)
    two = _train(tmp_path, "two", processes=2, **common)
    keys = ["loss", "grad_norm", "tokens", "update_changed", "update_ratio"]
    keys += [] if method == "sft" else ["reward", "mean_length", "masked_fraction"]
    _assert_same(one, two, keys)
    if method != "sft":  # each rank sampled its own prompts: rank 0 the first, rank 1 the second
        assert shares(tmp_path, "two") == [[[0], [0]], [[1], [1]]]
        assert shares(tmp_path, "one") == [[[0, 1], [0, 1]]]
    if finetune == "full":
        assert any(".mlp." in name for name in two[1])  # the whole model was gathered and saved
    if method == "sft" and importlib.util.find_spec("tensorboard"):
        # One writer, rank 0's (two raced: one rank's fresh-run emptying deleted the other's file).
        assert [len(list((tmp_path / run / "tensorboard").iterdir())) for run in ("one", "two")] == [1, 1]
        assert scalars(tmp_path / "two" / "tensorboard", "train/loss") == pytest.approx(
            scalars(tmp_path / "one" / "tensorboard", "train/loss"), rel=1e-4
        )


def test_two_ranks_resume_from_their_shards(tiny_model_dir, tmp_path):
    """Each rank saves its own shard of the training state; a re-run resumes from them."""
    common = {"model_dir": tiny_model_dir, "method": "onpolicy", "finetune": "lora", "processes": 2}
    state = str(tmp_path / "partial" / "state.pt")
    _train(tmp_path, "first", steps=1, state=state, **common)
    assert sorted(p.name for p in (tmp_path / "partial").iterdir()) == ["state.rank0.pt", "state.rank1.pt"]
    resumed = _train(tmp_path, "resumed", state=state, **common)
    uninterrupted = _train(tmp_path, "uninterrupted", **common)
    _assert_same(uninterrupted, resumed, ["loss", "grad_norm", "reward"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run on a GPU machine)")
@pytest.mark.parametrize("method, finetune", [("onpolicy", "lora"), ("onpolicy", "full")])
def test_one_rank_per_gpu_trains_as_one_process(tiny_model_dir, tmp_path, method, finetune):
    """The CUDA path (nccl, sharded parameters on the GPUs, synced generation), as many ranks as GPUs."""
    ranks = torch.cuda.device_count()
    common = {"model_dir": tiny_model_dir, "method": method, "finetune": finetune}
    one = _train(tmp_path, "one", processes=1, on_gpus=True, **common)
    torchrun = ("-m", "torch.distributed.run", "--nproc_per_node", str(ranks))
    sharded = _train(tmp_path, "sharded", launcher=torchrun, on_gpus=True, processes=ranks, **common)
    _assert_same(one, sharded, ["loss", "grad_norm", "reward", "mean_length"])


def test_sampling_gathers_the_weights_once(tiny_model_dir, tmp_path):
    """While a sharded model samples, its weights stay whole (no all-gather per token); afterwards
    they are sharded again and the samples equal those of the model sharded throughout."""
    script = f"""
import json, sys, torch
from selfdistill import distributed
from selfdistill.models import load_model
status = distributed.run_as_ranks(2, sys.argv)
if status is not None:
    sys.exit(status)
model = distributed.shard(load_model({tiny_model_dir!r}))
sample = lambda: model.generate(input_ids=torch.tensor([[5, 6, 7]]), do_sample=True, max_new_tokens=12,
                                min_new_tokens=12, synced_gpus=True, pad_token_id=0)
torch.manual_seed(0)
sharded = sample()
with distributed.gathered(model):
    torch.manual_seed(0)
    whole = sample()
    kinds = {{type(p).__name__ for p in model.parameters()}}
after = {{type(p).__name__ for p in model.parameters()}}
if distributed.rank() == 0:
    json.dump({{"same": torch.equal(sharded, whole), "kinds": sorted(kinds), "after": sorted(after)}},
              open({str(tmp_path / "out.json")!r}, "w"))
"""
    (tmp_path / "gathered.py").write_text(script)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "gathered.py")], capture_output=True, text=True, timeout=300, env=_env()
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "out.json").read_text())
    assert result == {"same": True, "kinds": ["Parameter"], "after": ["DTensor"]}
