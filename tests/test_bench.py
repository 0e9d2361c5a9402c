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
    assert all(0 < u < 1 for u in result["measured"]["full_finetuning_utilization"])
    rows = {(r["model"], r["gpu"], r["ranks"], r["mean_response_tokens"]): r for r in result["rows"]}
    assert not rows[("Qwen3-8B", "H200", 1, 4096)]["fits"]  # 16 bytes per parameter: 8B needs sharding
    assert rows[("Qwen3-8B", "H100", 4, 4096)]["fits"]
    for (model, gpu, ranks, response), r in rows.items():
        assert r["hours"][0] <= r["hours"][1]
        if ranks > 1:  # more ranks: less time per run
            assert r["hours"][1] < rows[(model, gpu, 1, response)]["hours"][1]
    for totals in result["grid_gpu_hours"].values():
        parts = [v for k, v in totals.items() if k != "total"]
        assert totals["total"][0] == pytest.approx(sum(p[0] for p in parts)) and totals["total"][0] > 0


def test_the_pretraining_benchmark_runs(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("suite", ROOT / "bench/suite.py")
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    script = tmp_path / "pretraining.py"
    script.write_text(suite.PRETRAINING)
    assert json.loads(run(str(script), "1", "16", "2").splitlines()[-1])["s_per_step"] > 0
