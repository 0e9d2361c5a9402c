"""The workflow end to end on config/smoke.yaml, in a temporary directory, through Snakemake itself."""

import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "config" / "smoke.yaml"
CFG = yaml.safe_load(SMOKE.read_text())
EVALS = "results/toy/eval/{}/{}.parquet"
SUBSETS = [f"c{c}_s{s}" for c in CFG["coverage"] for s in CFG["seeds"]]
SFT = [f"sft/{r}/{a}/{sub}" for r in CFG["richness"] for a in CFG["sft"]["ablations"] for sub in SUBSETS]
ONPOLICY = [f"onpolicy/{r}/{a}/{sub}" for r in CFG["richness"] for a in CFG["onpolicy"]["ablations"] for sub in SUBSETS]
GRPO = [f"grpo/none/standard/{sub}" for sub in SUBSETS]
ROLLOUT_FILES = ("adapter", "checkpoints", "log.parquet", "curves.parquet")



def snakemake(workdir, *args, configfile=SMOKE):
    cmd = ["snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile", str(configfile), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def planned_outputs(workdir, configfile):
    """Outputs of the jobs a dry run would execute, as {rule: set of outputs}."""
    out = snakemake(workdir, "-n", configfile=configfile)
    assert out.returncode == 0, out.stdout + out.stderr
    jobs, rule = {}, None
    for line in out.stdout.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):", line)
        if m:
            rule = m.group(1)
        elif rule and line.strip().startswith("output:"):
            jobs.setdefault(rule, set()).update(p.strip() for p in line.split(":", 1)[1].split(","))
            rule = None
    return jobs


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("smoke")
    run = snakemake(workdir, "--cores", "2")
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]
    return workdir


def test_summary_has_a_row_per_cell(smoke_run):
    metrics = pd.read_parquet(smoke_run / "results/summary/metrics.parquet")
    n_variants = len(SFT + ONPOLICY + GRPO)
    n_base = 2 + len(SUBSETS)  # test + ood once, train once per subset
    assert len(metrics) == n_base + n_variants * len(CFG["eval_sets"])
    for column in ["model", "method", "richness", "coverage", "seed", "ablation", "eval_set", "accuracy", "pass_at_n",
                   "mean_tokens", "epistemic_count", "epistemic_words", "epistemic_density", "n_problems", "n_samples"]:
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
    curves = pd.read_parquet(smoke_run / f"results/toy/train/{ONPOLICY[0]}/curves.parquet")
    assert curves["step"].tolist() == list(range(CFG["onpolicy"]["steps"] + 1))
    samples = pd.read_parquet(smoke_run / "results/toy/eval/base/ood.parquet")
    assert {"problem_id", "sample", "response", "n_tokens", "finish_reason", "extracted", "correct",
            "epistemic_count", "epistemic_words", "epistemic_density"} <= set(samples.columns)
    meta = read_provenance(smoke_run / "results/toy/eval/base/ood.parquet")
    assert meta["config"]["eval_set"]["split"] == "ood" and meta["code_version"] and meta["packages"]["torch"]
    logs = list((smoke_run / "logs").rglob("*.log"))
    assert len(logs) >= 15 and all(p.stat().st_size > 0 for p in logs)


def test_second_invocation_runs_nothing(smoke_run):
    out = snakemake(smoke_run, "-n")
    assert "Nothing to be done" in out.stdout + out.stderr


def _edited(tmp_path, edit):
    cfg = yaml.safe_load(SMOKE.read_text())
    edit(cfg)
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _evals(variants, eval_sets=("train", "test", "ood")):
    return {EVALS.format(v, e) for v in variants for e in eval_sets}


def _sft_jobs():
    return {f"results/toy/train/{v}/{f}" for v in SFT for f in ("adapter", "log.parquet", "selection.parquet")}


def _rollout_jobs(variants):
    return {f"results/toy/train/{v}/{f}" for v in variants for f in ROLLOUT_FILES}


CASES = {
    "ood temperature": (
        lambda c: c["eval_sets"]["ood"].update(temperature=0.9),
        # The rollout methods evaluate on ood during training, so they re-run too.
        {
            "evaluate": _evals(["base"] + SFT + ONPOLICY + GRPO, ["ood"]) | _evals(ONPOLICY + GRPO),
            "train_rollouts": _rollout_jobs(ONPOLICY + GRPO),
        },
    ),
    "sft lr": (
        lambda c: c["sft"].update(lr=0.002),
        {"train_sft": _sft_jobs(), "evaluate": _evals(SFT)},
    ),
    "onpolicy alpha": (
        lambda c: c["onpolicy"].update(alpha=0.25),
        {"train_rollouts": _rollout_jobs(ONPOLICY), "evaluate": _evals(ONPOLICY)},
    ),
    "teacher samples": (
        lambda c: c["teacher"].update(n_samples=3),
        {
            "teacher_traces": {f"results/toy/teacher/{r}/{sub}.parquet" for r in ("none", "solution") for sub in SUBSETS},
            "train_sft": _sft_jobs(),
            "evaluate": _evals(SFT),
        },
    ),
}
REPORT = {
    "summarize": {"results/summary/metrics.parquet"},
    "statistics": {f"results/summary/{t}.parquet" for t in ("cells", "comparisons", "mechanism", "claims")},
    "findings": {"results/findings.md"},
    "figures": {f"results/figures/{n}.png" for n in ["accuracy_by_richness", "length_by_richness", "epistemic_by_richness",
                                                      "train_loss", "training_curves", "factorial_ood_vs_epistemic"]},
}


@pytest.mark.parametrize("case", list(CASES))
def test_config_edit_reruns_exactly_the_dependent_jobs(smoke_run, tmp_path, case):
    edit, expected = CASES[case]
    planned = planned_outputs(smoke_run, _edited(tmp_path, edit))
    planned.pop("all", None)
    assert planned == {**expected, **REPORT}


def test_findings_page_has_every_claim_with_numbers(smoke_run):
    text = (smoke_run / "results/findings.md").read_text()
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    assert [s[:3] for s in sections] == ["(a)", "(b)", "(c)", "(d)", "Mec"]
    for section in sections[:4]:
        assert "Not tested" not in section
        row = next(line for line in section.splitlines() if line.startswith("| ") and "comparison" not in line)
        assert re.search(r"\| -?\d+\.\d+ \|", row), row  # a measured effect, not a placeholder
        assert re.search(r"\*\*(supported|not supported|inconclusive)", row)
    assert "**Answer (" in sections[4]
    claims = pd.read_parquet(smoke_run / "results/summary/claims.parquet")
    assert set(claims["claim"]) == {"a", "b", "c", "d"}


def test_report_builds_with_figures_and_findings(smoke_run):
    out = snakemake(smoke_run, "--report", "results/report.html")
    assert out.returncode == 0, out.stderr[-3000:]
    html = (smoke_run / "results/report.html").read_text()
    assert "findings" in html.lower() and "accuracy_by_richness" in html
