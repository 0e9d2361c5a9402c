"""Partial state (finished generation shards, training state) is reused only by the job that wrote it.

Each test kills a real Snakemake run (the whole process group, SIGKILL) once partial state is on
disk, edits the config, recovers as docs/reliability.md says (`snakemake --unlock`, then the run again with
`--rerun-incomplete`) and checks that the stale state was discarded: the result equals a clean run
at the new setting. A negative control runs the same scenario with the job key check disabled in
the copied checkout and shows the stale state being reused (a wrong result), so the test can fail.
"""

import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from incremental import OOD_SETS, copy_checkout, kill_when, snakemake, write_overlay

EVAL = "results/toy/eval/base/ood.parquet"
TRAIN = "results/toy/train/onpolicy/solution/standard/c1_s0"


def write_config(checkout: Path, overlay: dict) -> Path:
    return write_overlay(checkout / "config/test.yaml", overlay)


def recover(checkout: Path, configfile: Path, target: str) -> None:
    """The documented recovery after a kill (docs/reliability.md): remove Snakemake's stale lock, then re-run."""
    assert snakemake(checkout, "--unlock", configfile=configfile).returncode == 0
    out = snakemake(checkout, "--cores", "1", "--rerun-incomplete", target, configfile=configfile)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def disable_key_check(checkout: Path) -> None:
    """The negative control: claim_partial keeps whatever it finds (the behaviour before the fix)."""
    jobs = checkout / "selfdistill/jobs.py"
    text = jobs.read_text()
    jobs.write_text(
        text.replace(
            '    marker = directory / "JOB_KEY"\n',
            '    marker = directory / "JOB_KEY"\n    directory.mkdir(parents=True, exist_ok=True)\n'
            "    return directory\n",
        )
    )


def eval_at(temperature):
    return {
        # The organism's OOD sets sample alike (the config check refuses otherwise).
        "eval_sets": {name: {"temperature": temperature, "n_samples": 4} for name in OOD_SETS},
        "generation": {"shard_problems": 1},  # 6 shards, each starting its own grading pool: time to kill
    }


def stale_eval(tmp_path, name, control=False):
    """Kill the OOD evaluation after its first shard at T = 0.3, re-run it at T = 1.5."""
    checkout = copy_checkout(tmp_path / name)
    if control:
        disable_key_check(checkout)
    before = write_config(checkout, eval_at(0.3))
    assert snakemake(checkout, "--cores", "2", "results/models/toy/hf", configfile=before).returncode == 0
    kill_when(
        checkout,
        EVAL,
        "--cores",
        "1",
        configfile=before,
        ready=lambda: (checkout / f"{EVAL}.shards/shard00000.parquet").exists(),
    )
    assert not (checkout / EVAL).exists()
    after = write_config(checkout, eval_at(1.5))
    recover(checkout, after, EVAL)
    log = (checkout / "logs/evaluate/toy/base/ood.log").read_text()
    return checkout, after, pd.read_parquet(checkout / EVAL), log


@pytest.mark.slow  # real Snakemake runs killed mid-job: 1.5-2 min each
def test_stale_generation_shards_are_discarded_after_a_config_change(tmp_path):
    checkout, after, table, log = stale_eval(tmp_path, "fixed")
    assert "discarding partial state" in log and "shard 0: reusing" not in log
    (checkout / EVAL).unlink()  # a clean run at the new temperature, for comparison
    assert snakemake(checkout, "--cores", "1", EVAL, configfile=after).returncode == 0
    pd.testing.assert_frame_equal(table, pd.read_parquet(checkout / EVAL))

    _, _, stale, stale_log = stale_eval(tmp_path, "control", control=True)
    assert "shard 0: reusing" in stale_log
    assert not table.equals(stale)  # the table labelled T = 1.5 held rows sampled at T = 0.3


def onpolicy_at(lr):
    return {"onpolicy": {"lr": lr, "steps": 8, "checkpoint_every": 1, "max_new_tokens": 48}}


def adapter(checkout: Path) -> dict:
    return load_file(checkout / TRAIN / "adapter/adapter_model.safetensors")


def stale_training(tmp_path, name, control=False):
    """Kill an on-policy job once its state holds a step, at lr 1e-3; re-run it at lr 5e-3."""
    checkout = copy_checkout(tmp_path / name)
    if control:
        disable_key_check(checkout)
    before = write_config(checkout, onpolicy_at(1e-3))
    # What the training job waits for, made on both cores first (the gate's base evaluations run in parallel).
    ready = ("results/models/toy/hf", "results/subsets/toy/c1_s0.parquet", "results/toy/gate.json")
    assert snakemake(checkout, "--cores", "2", *ready, configfile=before).returncode == 0
    kill_when(
        checkout,
        f"{TRAIN}/log.parquet",
        "--cores",
        "1",
        configfile=before,
        ready=lambda: (checkout / TRAIN / "partial/state.pt").exists(),
    )
    assert not (checkout / TRAIN / "log.parquet").exists()
    after = write_config(checkout, onpolicy_at(5e-3))
    recover(checkout, after, f"{TRAIN}/log.parquet")
    log = (checkout / "logs/train_rollouts/toy/onpolicy/solution/standard/c1_s0.log").read_text()
    return checkout, after, adapter(checkout), log


@pytest.mark.slow
def test_stale_training_state_is_discarded_after_a_config_change(tmp_path):
    checkout, after, weights, log = stale_training(tmp_path, "fixed")
    assert "discarding partial state" in log and "resumed from" not in log
    for path in ("adapter", "checkpoints", "log.parquet", "curves.parquet"):
        subprocess.run(["rm", "-rf", str(checkout / TRAIN / path)], check=True)
    assert snakemake(checkout, "--cores", "1", f"{TRAIN}/log.parquet", configfile=after).returncode == 0
    clean = adapter(checkout)
    assert weights.keys() == clean.keys() and all(torch.equal(weights[k], clean[k]) for k in clean)

    _, _, stale, stale_log = stale_training(tmp_path, "control", control=True)
    assert "resumed from" in stale_log
    assert any(not torch.equal(stale[k], clean[k]) for k in clean)  # an lr 1e-3 start inside an lr 5e-3 run
