"""Incremental precision: after a completed run, each edit below must re-run exactly the jobs it affects.

    python bench/incremental_precision.py        # ~5 min on 2 cores; writes bench/results/incremental_precision.json

Copies this checkout to a temporary directory, runs config/smoke.yaml there to completion, then for
each edit (a config value, or a line appended to a module or script) lists the jobs a dry run would
execute and compares them with the jobs the edit should re-run: extra = planned but not expected,
missed = expected but not planned (target: 0 and 0). tests/test_workflow.py runs the same cases.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SMOKE = yaml.safe_load((REPO / "config/smoke.yaml").read_text())
EVALS = "results/toy/eval/{}/{}.parquet"
SUBSETS = [f"c{c}_s{s}" for c in SMOKE["coverage"] for s in SMOKE["seeds"]]
SFT = [f"sft/{r}/{a}/{sub}" for r in SMOKE["richness"] for a in SMOKE["sft"]["ablations"] for sub in SUBSETS]
ONPOLICY = [f"onpolicy/{r}/{a}/{sub}" for r in SMOKE["richness"] for a in SMOKE["onpolicy"]["ablations"] for sub in SUBSETS]
GRPO = [f"grpo/none/standard/{sub}" for sub in SUBSETS]
ROLLOUT_FILES = ("adapter", "checkpoints", "log.parquet", "curves.parquet")
FIGURES = {f"results/figures/{n}.png" for n in ["accuracy_by_richness", "length_by_richness", "epistemic_by_richness",
                                                 "train_loss", "training_curves", "factorial_ood_vs_epistemic"]}
REPORT = {
    "summarize": {"results/summary/metrics.parquet"},
    "statistics": {f"results/summary/{t}.parquet" for t in ("cells", "comparisons", "mechanism", "claims")},
    "findings": {"results/findings.md"},
    "figures": FIGURES,
}


def copy_checkout(dst: Path) -> Path:
    """This checkout's working tree (not its results) at dst, to run and edit without touching it."""
    shutil.copytree(REPO, dst, ignore=shutil.ignore_patterns(
        ".git", "results", "logs", "benchmarks", ".snakemake", "*.egg-info", "__pycache__"), dirs_exist_ok=True)
    return dst


def checkout_env(checkout: Path) -> dict:
    """The environment for commands in a copied checkout: they import that checkout's package."""
    return {**os.environ, "PYTHONPATH": str(checkout)}


def snakemake(checkout: Path, *args, configfile=None, timeout=1800) -> subprocess.CompletedProcess:
    """Snakemake in a copied checkout."""
    cmd = ["snakemake", "--configfile", str(configfile or checkout / "config/smoke.yaml"), *args]
    return subprocess.run(cmd, cwd=checkout, env=checkout_env(checkout), capture_output=True, text=True, timeout=timeout)


def planned_outputs(checkout: Path, configfile=None) -> dict[str, set[str]]:
    """Outputs of the jobs a dry run would execute, as {rule: set of outputs} (without the target rule `all`)."""
    out = snakemake(checkout, "-n", configfile=configfile)
    if out.returncode:
        raise RuntimeError(out.stdout[-3000:] + out.stderr[-3000:])
    jobs, rule = {}, None
    for line in out.stdout.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):", line)
        if m:
            rule = m.group(1)
        elif rule and line.strip().startswith("output:"):
            jobs.setdefault(rule, set()).update(p.strip() for p in line.split(":", 1)[1].split(","))
            rule = None
    jobs.pop("all", None)
    return jobs


def _evals(variants, eval_sets=("train", "test", "ood")):
    return {EVALS.format(v, e) for v in variants for e in eval_sets}


def _sft_jobs():
    return {f"results/toy/train/{v}/{f}" for v in SFT for f in ("adapter", "log.parquet", "selection.parquet")}


def _rollout_jobs(variants):
    return {f"results/toy/train/{v}/{f}" for v in variants for f in ROLLOUT_FILES}


def _config(key, **values):
    def edit(cfg):
        node = cfg
        for part in key.split("."):
            node = node[part]
        node.update(values)
    return ("config", edit)


def _code(path):
    return ("code", path)


# name -> (edit, {rule: outputs it must re-run}).
CASES = {
    "config: ood temperature": (
        _config("eval_sets.ood", temperature=0.9),
        # The rollout methods evaluate on ood during training, so they re-run too.
        {
            "evaluate": _evals(["base"] + SFT + ONPOLICY + GRPO, ["ood"]) | _evals(ONPOLICY + GRPO),
            "train_rollouts": _rollout_jobs(ONPOLICY + GRPO),
            **REPORT,
        },
    ),
    "config: sft lr": (_config("sft", lr=0.002), {"train_sft": _sft_jobs(), "evaluate": _evals(SFT), **REPORT}),
    "config: onpolicy alpha": (
        _config("onpolicy", alpha=0.25),
        {"train_rollouts": _rollout_jobs(ONPOLICY), "evaluate": _evals(ONPOLICY), **REPORT},
    ),
    "config: teacher samples": (
        _config("teacher", n_samples=3),
        {
            "teacher_traces": {f"results/toy/teacher/{r}/{sub}.parquet" for r in ("none", "solution") for sub in SUBSETS},
            "train_sft": _sft_jobs(),
            "evaluate": _evals(SFT),
            **REPORT,
        },
    ),
    "code: selfdistill/plots.py": (_code("selfdistill/plots.py"), {"figures": FIGURES, "findings": REPORT["findings"]}),
    "code: selfdistill/backends/vllm.py (toy model uses hf)": (_code("selfdistill/backends/vllm.py"), {}),
    "code: selfdistill/train/losses.py": (
        _code("selfdistill/train/losses.py"),
        {"train_rollouts": _rollout_jobs(ONPOLICY + GRPO), "evaluate": _evals(ONPOLICY + GRPO), **REPORT},
    ),
    "code: scripts/summarize.py": (_code("scripts/summarize.py"), {"summarize": REPORT["summarize"]}),
}


def planned_after(checkout: Path, edit) -> dict[str, set[str]]:
    """Jobs a dry run plans after applying an edit to a completed checkout (the edit is undone after)."""
    kind, what = edit
    if kind == "config":
        cfg = yaml.safe_load((checkout / "config/smoke.yaml").read_text())
        what(cfg)
        edited = checkout / "edited.yaml"
        edited.write_text(yaml.safe_dump(cfg))
        return planned_outputs(checkout, edited)
    module = checkout / what
    original = module.read_text()
    module.write_text(original + "\n# edited\n")
    try:
        return planned_outputs(checkout)
    finally:
        module.write_text(original)


def compare(planned: dict, expected: dict) -> dict:
    flat = lambda jobs: {(rule, out) for rule, outs in jobs.items() for out in outs}  # noqa: E731
    extra, missed = flat(planned) - flat(expected), flat(expected) - flat(planned)
    return {"expected": len(flat(expected)), "planned": len(flat(planned)),
            "extra": sorted(f"{r}: {o}" for r, o in extra), "missed": sorted(f"{r}: {o}" for r, o in missed)}


def run_cases() -> dict:
    """Run the smoke config in a copy of this checkout, then compare each case's planned jobs."""
    with tempfile.TemporaryDirectory() as tmp:
        checkout = copy_checkout(Path(tmp) / "checkout")
        run = snakemake(checkout, "--cores", str(os.cpu_count()))
        if run.returncode:
            raise RuntimeError(run.stderr[-3000:])
        return {name: compare(planned_after(checkout, edit), expected) for name, (edit, expected) in CASES.items()}


def main():
    results = run_cases()
    for name, r in results.items():
        print(f"{name:60s} expected {r['expected']:4d}  extra {len(r['extra']):3d}  missed {len(r['missed']):3d}")
    (REPO / "bench/results/incremental_precision.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
