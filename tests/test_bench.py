"""The benchmark scripts run against the package as it is now (a changed signature would otherwise
surface only on a GPU machine, or in a benchmark run weeks later): each in its CPU check mode."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args, timeout=600):
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize("script", ["gpu_check", "fsdp_check"])
def test_gpu_scripts_run_their_tiny_check_on_cpu(script, tmp_path):
    out = tmp_path / "result.json"
    run(f"bench/{script}.py", "--tiny", "--out", str(out))
    assert json.loads(out.read_text())


def test_distill_at_scale_measures_every_setting(tmp_path):
    out = tmp_path / "result.json"
    run("bench/distill_at_scale.py", "--tiny", "--out", str(out))
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 8 and all("seconds" in r or "error" in r for r in rows)


def test_our_side_of_the_trl_comparison_runs(tiny_model_dir):
    measured = json.loads(
        run("bench/onpolicy_vs_trl.py", "--child", "ours", "--model", tiny_model_dir, "--steps", "2").splitlines()[-1]
    )
    assert len(measured["step_seconds"]) == 2 and measured["peak_rss_mb"] > 0


def test_paper_scale_model_reads_the_gpu_measurements(tmp_path):
    out = tmp_path / "model.json"
    run("bench/paper_scale_model.py", "--out", str(out))
    result = json.loads(out.read_text())
    assert 0 < result["measured"]["distill_step_utilization"]["checkpointing"] < 1
    full_8b = [r for r in result["rows"] if r["model"] == "Qwen3-8B" and r["finetune"] == "full"]
    assert all(r["hours_per_run"][0] <= r["hours_per_run"][1] for r in full_8b)


def test_the_pretraining_benchmark_runs(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("suite", ROOT / "bench/suite.py")
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    script = tmp_path / "pretraining.py"
    script.write_text(suite.PRETRAINING)
    assert json.loads(run(str(script), "1", "16", "2").splitlines()[-1])["s_per_step"] > 0
