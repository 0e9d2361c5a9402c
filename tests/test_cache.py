"""Between-workflow caching: a second workflow directory takes config-independent outputs
(prepared data, the pretrained toy model, base-model evaluations) from the cache instead of
recomputing them."""

import os
import subprocess
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
TARGETS = ["results/data/toy.parquet", "results/models/toy/hf", "results/toy/eval/base/test.parquet"]
LOGS = ["logs/prepare_dataset/toy.log", "logs/pretrain_toy/toy.log", "logs/evaluate/toy/base/test.log"]


def run(workdir, cache):
    env = {**os.environ, "SNAKEMAKE_OUTPUT_CACHE": str(cache)}
    cmd = [
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(REPO / "config/smoke.yaml"),
        "--cores",
        "2",
        *TARGETS,
        "--cache",
    ]  # --cache last: it would take the targets as rule names
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return proc.stderr


def test_second_workflow_reuses_cached_outputs(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    run(tmp_path / "first", cache)
    assert all((tmp_path / "first" / log).stat().st_size > 0 for log in LOGS)  # computed
    assert len(list(cache.iterdir())) >= len(TARGETS)  # entries per output file (and per file of a directory)

    stderr = run(tmp_path / "second", cache)
    second = tmp_path / "second"
    assert all((second / log).stat().st_size == 0 for log in LOGS)  # no job ran (Snakemake only creates the log)
    assert "Symlinking output file results/toy/eval/base/test.parquet from cache" in stderr
    for target in TARGETS:
        assert (second / target).exists()
    pd.testing.assert_frame_equal(
        pd.read_parquet(second / TARGETS[-1]), pd.read_parquet(tmp_path / "first" / TARGETS[-1])
    )
