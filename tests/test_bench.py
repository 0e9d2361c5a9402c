"""The benchmark scripts run against the package as it is now (a changed signature would otherwise
surface only on a GPU machine, or in a benchmark run weeks later): each in its CPU check mode."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _bench_module(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(*args, timeout=600):
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize("script", ["gpu_check", "fsdp_check"])
def test_gpu_scripts_run_their_tiny_check_on_cpu(script, tmp_path):
    out = tmp_path / "result.json"
    run(f"bench/{script}.py", "--tiny", "--out", str(out))
    assert json.loads(out.read_text())


def test_precision_check_runs_every_part_and_passes_its_checks(tmp_path):
    out = tmp_path / "result.json"
    run("bench/precision_check.py", "--tiny", "--out", str(out))  # exits non-zero when a check fails
    result = json.loads(out.read_text())
    assert len(result["checks"]) == 6 and all(result["checks"].values())
    comparison = result["mixed_precision_step"]["comparison"]
    assert comparison["pure_bf16_negative_control"]["changed_all_weights"] < 0.2  # the control has teeth
    assert result["fsdp_one_rank"]["fsdp"]["ranks"] == 1 and result["fsdp_one_rank"]["fsdp"]["sharded"]


def test_precision_check_records_running_out_of_memory_and_goes_on():
    precision_check = _bench_module("precision_check")

    def out_of_memory():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 11.59 GiB")  # as the allocator raises it

    tried = {"positions": 20480, "loss_chunk": 1024}
    row = precision_check.attempt(torch.device("cpu"), tried, out_of_memory)
    assert row == {**tried, "error": "out of memory"}
    failed = precision_check.attempt(torch.device("cpu"), tried, lambda: 1 / 0)
    assert "ZeroDivisionError" in failed["error"]
    # Only the all-positions-at-once loss may run out of memory without failing the run.
    result = {"chunked_distillation_loss": {"loss_all_at_once": row, "whole_step_chunked": row}, "x": [failed]}
    assert precision_check.errors(result) == [".chunked_distillation_loss.whole_step_chunked", ".x[0]"]


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
    suite = _bench_module("suite")
    script = tmp_path / "pretraining.py"
    script.write_text(suite.PRETRAINING)
    assert json.loads(run(str(script), "1", "16", "2").splitlines()[-1])["s_per_step"] > 0
