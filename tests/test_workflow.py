"""The workflow end to end on config/smoke.yaml, in a temporary directory, through Snakemake itself."""

import re

import numpy as np
import pandas as pd
import pytest

from selfdistill import grid
from selfdistill.draws import ONE_DRAW

from incremental import CASES, REPORT, compare, copy_checkout, planned_after, snakemake, write_overlay
from incremental import SMOKE as CFG

SFT, ONPOLICY, GRPO = (grid.runs(CFG, [m]) for m in ("sft", "onpolicy", "grpo"))
SUBSETS = grid.subsets(CFG)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """A completed run of config/smoke.yaml in a copy of this checkout (so code edits can be tried)."""
    checkout = copy_checkout(tmp_path_factory.mktemp("smoke"))
    run = snakemake(checkout, "--cores", "2")
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]
    return checkout


def test_summary_has_a_row_per_cell(smoke_run):
    metrics = pd.read_parquet(smoke_run / "results/summary/metrics.parquet")
    n_variants = len(SFT + ONPOLICY + GRPO)
    sets = CFG["eval_sets"].values()
    # The base model once per eval set, on each subset for `train`; variants on the sets of all variants.
    n_base = sum(len(SUBSETS) if s["split"] == "subset" else 1 for s in sets)
    assert len(metrics) == n_base + n_variants * sum(s["variants"] == "all" for s in sets)
    for column in [
        "model",
        "method",
        "richness",
        "coverage",
        "seed",
        "ablation",
        "eval_set",
        "accuracy",
        "pass_at_n",
        "mean_tokens",
        "epistemic_count",
        "epistemic_words",
        "epistemic_density",
        "n_problems",
        "n_samples",
    ]:
        assert column in metrics.columns
    assert set(metrics["method"]) == {"base", "sft", "onpolicy", "grpo"}
    assert set(metrics["ablation"]) == {"standard"} | set(CFG["sft"]["ablations"]) | set(CFG["onpolicy"]["ablations"])
    assert metrics["accuracy"].between(0, 1).all()
    assert (metrics["n_samples"] == 2).all()


def test_outputs_exist_with_provenance(smoke_run):
    from selfdistill.io import read_provenance

    for path in REPORT["figures"]:
        assert (smoke_run / path).stat().st_size > 10_000
    for variant in SFT + ONPOLICY + GRPO:
        assert (smoke_run / f"results/toy/train/{variant}/adapter/adapter_config.json").exists()
    curves = pd.read_parquet(smoke_run / "results/summary/curves.parquet")
    run = curves[
        (curves["method"] == "onpolicy")
        & (curves["seed"] == 0)
        & (curves["coverage"] == 1)
        & (curves["richness"] == "solution")
        & (curves["ablation"] == "standard")
    ]
    assert run["step"].tolist() == list(range(CFG["onpolicy"]["steps"] + 1))  # base, each checkpoint, the final model
    assert set(run["eval_set"]) == {CFG["onpolicy"]["eval_set"]} and run["n_problems"].nunique() == 1
    samples = pd.read_parquet(smoke_run / "results/toy/eval/base/ood.parquet")
    assert {
        "problem_id",
        "sample",
        "response",
        "n_tokens",
        "finish_reason",
        "extracted",
        "correct",
        "epistemic_count",
        "epistemic_words",
        "epistemic_density",
    } <= set(samples.columns)
    meta = read_provenance(smoke_run / "results/toy/eval/base/ood.parquet")
    assert meta["config"]["eval_set"]["split"] == "ood" and meta["code_version"] and meta["packages"]["torch"]
    logs = list((smoke_run / "logs").rglob("*.log"))
    assert len(logs) >= 15 and all(p.stat().st_size > 0 for p in logs)


def test_second_invocation_runs_nothing(smoke_run):
    out = snakemake(smoke_run, "-n")
    assert "Nothing to be done" in out.stdout + out.stderr


@pytest.mark.parametrize("case", list(CASES))
def test_edit_reruns_exactly_the_dependent_jobs(smoke_run, case):
    edit, expected = CASES[case]
    result = compare(planned_after(smoke_run, edit), expected)
    assert not result["extra"] and not result["missed"], result


def test_findings_page_opens_with_the_headline_and_has_every_claim_with_numbers(smoke_run):
    text = (smoke_run / "results/findings.md").read_text()
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    assert [s[:8] for s in sections] == ["Headline", "The pape", "Checking", "Predicti", "The mode", "Does OOD"]
    # One pretrained draw of the one world: the headline says its verdicts are that draw's, in one line.
    assert sections[0].rstrip().endswith(ONE_DRAW)
    assert pd.read_parquet(smoke_run / "results/summary/draws.parquet").empty
    # The headline: the guess_check world's arm, its predicted sign, effect, CI and verdict mark, per quantity.
    assert re.search(r"\| guess_check \(toy\) \| on-policy, solution teacher, coverage 1 \| ↓ [+-]\d\.\d{3} \[", text)
    claims = re.split(r"^### ", sections[1], flags=re.M)[1:]
    assert [c[:3] for c in claims] == ["(a)", "(b)", "(c)", "(d)"]
    for claim in claims:
        row = next(line for line in claim.splitlines() if line.startswith("| toy (guess_check) |"))
        assert re.search(r"\| -?\d+\.\d+ \|", row), row  # a measured effect, not a placeholder
        assert re.search(r"\*\*(supported|not supported|inconclusive)", row)
    assert "Not tested" not in text
    # The organism: predictions written before any result, then the gate and a verdict per result.
    assert sections[3].startswith("Predictions (written from the config before any result)")
    assert "| toy | guess_check |" in sections[4]  # the gate's row
    assert re.search(r"\| onpolicy/solution/standard/c1 \| ood \| lower \| [+-]\d\.\d{3} \|", sections[4])
    assert re.search(r"\| onpolicy/solution/standard/c1 \| ood, \d terms \| lower \| [+-]\d\.\d{3} \|", sections[4])
    assert "| toy (guess_check) |" in sections[5]  # the mechanism fit of the one model
    claims = pd.read_parquet(smoke_run / "results/summary/claims.parquet")
    assert set(claims["claim"]) == {"a", "b", "c", "d"} and set(claims["model"]) == {"toy"}
    # Checking's rate and worth: every trained arm on the one set evaluated forced and banned for all variants.
    checking = pd.read_parquet(smoke_run / "results/summary/checking.parquet")
    assert len(checking) == len(SFT + ONPOLICY + GRPO) and set(checking["eval_set"]) == {"ood"}
    assert (checking["rate_off_arm"] == 0).all()  # the ban acts on what the table counts as a check
    terms = checking[["rate_term", "check_accuracy_term", "nocheck_accuracy_term"]].sum(axis=1, min_count=3)
    defined = terms.notna()
    assert np.allclose(terms[defined], checking.loc[defined, "total"]) and np.allclose(
        checking["total"], checking["free"]
    )
    assert sections[2].count("\n| toy | ") == len(checking)


def test_report_opens_with_the_headline_and_has_the_figures(smoke_run):
    out = snakemake(smoke_run, "--report", "results/report.html")
    assert out.returncode == 0, out.stderr[-3000:]
    html = (smoke_run / "results/report.html").read_text()
    assert "findings" in html.lower() and "accuracy_by_richness" in html
    assert "re-enable recovery" in html and "on-policy, solution teacher" in html  # the headline's table


def test_training_job_as_two_ranks_gives_the_one_process_result(smoke_run, monkeypatch):
    """training.processes: 2 runs the job's script as 2 ranks (accelerate launch, FSDP over gloo):
    the same losses as the one-process run, logged by both ranks.
    Last in this module: it re-runs one training job with another config."""
    job = f"results/toy/train/{ONPOLICY[0]}"
    before = {name: pd.read_parquet(smoke_run / job / name) for name in ("log.parquet",)}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # 2 ranks need 2 GPUs; on CPU they run anywhere
    two_ranks = write_overlay(smoke_run / "config/two_ranks.yaml", {"training": {"processes": 2}})
    out = snakemake(smoke_run, "--cores", "2", f"{job}/log.parquet", configfile=two_ranks)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for name, table in before.items():
        # atol: the on-policy divergence (~5e-4 here) is a difference of float32 log-probs
        pd.testing.assert_frame_equal(pd.read_parquet(smoke_run / job / name), table, rtol=1e-4, atol=1e-6)
    log = (smoke_run / f"logs/train_rollouts/toy/{ONPOLICY[0]}.log").read_text()
    assert "[rank 0]" in log and "[rank 1]" in log
