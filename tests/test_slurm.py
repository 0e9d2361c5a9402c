"""The SLURM profile against a real single-node SLURM cluster (started and stopped by the test).

    python -m pytest -m slurm     # as root on Debian; installs slurm-wlm and munge if missing

Runs three jobs of config/smoke.yaml (prepare data, pretrain the toy model, evaluate it) through
`--profile profiles/slurm`, checks that SLURM ran them (its job records) and that the outputs
equal a local run's.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from slurm_cluster import Cluster, install

pytestmark = pytest.mark.slurm
REPO = Path(__file__).resolve().parents[1]
TARGETS = ["results/data/toy.parquet", "results/models/toy/hf", "results/toy/eval/base/test.parquet"]
# The test cluster has no GPUs: model jobs ask for none here (on a real cluster, config sets them).
NO_GPU = {rule: {"gpu": 0} for rule in ("teacher_traces", "train_sft", "train_rollouts", "evaluate")}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("starting SLURM daemons needs root")
    install()
    cluster = Cluster(tmp_path_factory.mktemp("slurm")).start()
    yield cluster
    cluster.stop()


def snakemake(workdir, configfile, *extra, env=None):
    cmd = [
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(configfile),
        *extra,
        *TARGETS,
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert run.returncode == 0, run.stderr[-5000:]
    return run


def test_smoke_jobs_run_through_sbatch_and_match_a_local_run(cluster, tmp_path):
    config = yaml.safe_load((REPO / "config/smoke.yaml").read_text())
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump({**config, "resources": NO_GPU}))

    snakemake(tmp_path / "local", configfile, "--cores", "2")
    snakemake(
        tmp_path / "slurm",
        configfile,
        "--profile",
        str(REPO / "profiles/slurm"),
        "--default-resources",
        "slurm_partition=debug",
        "runtime=10",
        "mem_mb=1000",
        "--slurm-no-account",
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "5",
        env=cluster.env,
    )

    records = cluster.run("squeue", "--states=all", "-h", "-o", "%j|%T").stdout.split()
    assert len(records) == len(TARGETS) and all(r.endswith("|COMPLETED") for r in records), records
    slurm_logs = tmp_path / "slurm/.snakemake/slurm_logs"
    assert {p.name for p in slurm_logs.iterdir()} == {"rule_prepare_dataset", "rule_pretrain_toy", "rule_evaluate"}

    local = pd.read_parquet(tmp_path / "local" / TARGETS[-1])
    remote = pd.read_parquet(tmp_path / "slurm" / TARGETS[-1])
    pd.testing.assert_frame_equal(local, remote)
    assert local["n_tokens"].sum() > 0


def test_a_two_rank_training_job_runs_its_ranks_through_srun(cluster, tmp_path):
    """training.processes: 2 inside a SLURM job: the job's process starts its ranks with SLURM's own
    launcher (a 2-task `srun` step, torchrun's variables from SLURM's), and the trained job logs what
    the same job gives as one process run locally."""
    from selfdistill import grid
    from selfdistill.config import load_config

    config = yaml.safe_load((REPO / "config/smoke.yaml").read_text())  # an overlay, written out below
    job = f"results/toy/train/{grid.runs(load_config(REPO / 'config/smoke.yaml'), ['grpo'])[0]}/log.parquet"
    local_config, slurm_config = tmp_path / "local.yaml", tmp_path / "slurm.yaml"
    local_config.write_text(yaml.safe_dump({**config, "resources": NO_GPU}))
    resources = {**NO_GPU, "train_rollouts": {"gpu": 0, "tasks": 2}}
    slurm_config.write_text(yaml.safe_dump({**config, "training": {"processes": 2}, "resources": resources}))

    local = tmp_path / "local"
    run = subprocess.run(
        ["snakemake", "-s", str(REPO / "Snakefile"), "-d", str(local), "--configfile", str(local_config),
         "--cores", "2", job],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-5000:]
    # The same inputs for the SLURM run: only the training job (its `training` params differ) runs there.
    shutil.copytree(local / "results", tmp_path / "slurm" / "results")
    shutil.rmtree(tmp_path / "slurm" / Path(job).parent)
    run = subprocess.run(
        ["snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path / "slurm"), "--configfile", str(slurm_config),
         "--profile", str(REPO / "profiles/slurm"), "--default-resources", "slurm_partition=debug", "runtime=10",
         "mem_mb=1000", "--slurm-no-account", "--slurm-status-command", "squeue",
         "--slurm-init-seconds-before-status-checks", "5", job],
        capture_output=True, text=True, timeout=900, env=cluster.env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-5000:]
    assert "Select jobs to execute" in run.stderr and "train_rollouts" in run.stderr
    log = next((tmp_path / "slurm/logs/train_rollouts").rglob("*.log")).read_text()
    assert "[rank 0]" in log and "[rank 1]" in log
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "slurm" / job), pd.read_parquet(local / job), rtol=1e-4, atol=1e-6
    )
