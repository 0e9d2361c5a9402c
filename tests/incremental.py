"""Incremental precision: after a completed run, each edit (of the config, or of the code) must re-run
exactly the jobs it affects, and a comment, a reformatting or a `touch` none. The workflow runs in a
copy of this checkout, so code can be edited there, on config/smoke.yaml with the test's own overlay
on top. Test and benchmark support, not part of the package: used by tests/test_workflow.py, other
workflow tests and bench/incremental_precision.py; the expected jobs come from the grid (selfdistill.grid).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from selfdistill import grid
from selfdistill.config import load_config

REPO = Path(__file__).resolve().parents[1]
SMOKE = load_config(REPO / "config/smoke.yaml")
MODEL = next(iter(SMOKE["models"]))
FIGURES = {
    f"results/figures/{n}.png"
    for n in [
        "accuracy_by_richness",
        "length_by_richness",
        "epistemic_by_richness",
        "train_loss",
        "training_curves",
        "factorial_ood_vs_epistemic",
        "organism",
    ]
}
REPORT = {
    "summarize": {"results/summary/metrics.parquet", "results/summary/curves.parquet"},
    "statistics": {
        f"results/summary/{t}.parquet"
        for t in ("cells", "comparisons", "mechanism", "claims", "organism", "draws", "draw_tests", "checking")
    },
    "findings": {"results/findings.md", "results/headline.rst"},
    "figures": FIGURES,
}
OUTPUTS = {
    "train_sft": ("adapter", "log.parquet", "selection.parquet"),
    "train_rollouts": ("adapter", "checkpoints", "log.parquet"),
}


def copy_checkout(dst: Path) -> Path:
    """This checkout's working tree (not its results) at dst, to run and edit without touching it."""
    shutil.copytree(
        REPO,
        dst,
        ignore=shutil.ignore_patterns(
            ".git", "results", "logs", "benchmarks", ".snakemake", "*.egg-info", "__pycache__"
        ),
        dirs_exist_ok=True,
    )
    return dst


def checkout_env(checkout: Path) -> dict:
    """The environment for commands in a copied checkout: they import that checkout's package."""
    return {**os.environ, "PYTHONPATH": str(checkout)}


def _command(checkout: Path, args, configfile, python) -> list[str]:
    launcher = [python, "-m", "snakemake"] if python else ["snakemake"]
    overlays = [checkout / "config/smoke.yaml", *([configfile] if configfile else [])]
    return [*launcher, *args, "--configfile", *map(str, overlays)]


def write_overlay(path: Path, overlay: dict) -> Path:
    path.write_text(yaml.safe_dump(overlay))
    return path


def snakemake(checkout: Path, *args, configfile=None, python=None, timeout=1800) -> subprocess.CompletedProcess:
    """Snakemake in a copied checkout on config/smoke.yaml, with the overlay `configfile` on top if
    given (with `python`, that interpreter's Snakemake, e.g. a virtual environment's)."""
    cmd = _command(checkout, args, configfile, python)
    return subprocess.run(
        cmd, cwd=checkout, env=checkout_env(checkout), capture_output=True, text=True, timeout=timeout
    )


def kill_when(checkout: Path, *args, ready, configfile=None, python=None, timeout=600) -> None:
    """Run Snakemake in a copied checkout and SIGKILL it and its jobs as soon as ready() holds
    (the recovery afterwards: `snakemake --unlock`, then the run again)."""
    proc = subprocess.Popen(
        _command(checkout, args, configfile, python),
        cwd=checkout,
        env=checkout_env(checkout),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + timeout
    while not ready() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    if proc.poll() is not None:
        raise RuntimeError("the run ended before it could be killed")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


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


# ---- the jobs an edit must re-run ---------------------------------------------------------------


def trained(methods, config=SMOKE) -> dict[str, set[str]]:
    """The training jobs of `methods` (their outputs, by rule)."""
    jobs = {}
    for run in grid.runs(config, methods):
        rule = grid.METHODS[run.split("/")[0]].rule
        jobs.setdefault(rule, set()).update(f"results/{MODEL}/train/{run}/{f}" for f in OUTPUTS[rule])
    return jobs


def evaluations(methods=(), eval_sets=None, base=False, config=SMOKE) -> set[str]:
    """Final and checkpoint evaluations of `methods` (and of the base model) on `eval_sets` (all if None)."""
    wanted = set(methods) | ({"base"} if base else set())
    paths = set(grid.eval_targets(config)) | set(grid.curve_targets(config))
    axes = {p: grid.parse_path("eval", p, full_coverage=0) for p in paths}
    return {p for p, a in axes.items() if a["method"] in wanted and (eval_sets is None or a["eval_set"] in eval_sets)}


def merge(*job_sets: dict) -> dict:
    merged = {}
    for jobs in job_sets:
        for rule, outputs in jobs.items():
            merged.setdefault(rule, set()).update(outputs)
    return merged


def _config(keys, **values):
    """An edit setting `values` under each dotted key (a key, or several to edit alike): an overlay."""
    overlay = {}
    for key in [keys] if isinstance(keys, str) else keys:
        node = overlay
        for part in key.split("."):
            node = node.setdefault(part, {})
        node.update(values)
    return ("config", overlay)


# The OOD eval sets sampled freely and with checking forced on / off: the organism compares them,
# so they sample alike (the config check refuses otherwise) and are edited together.
OOD_SETS = ("ood", SMOKE["organism"]["ood_on"], SMOKE["organism"]["ood_off"])


ALL_METHODS = tuple(grid.METHODS)
# name -> (edit, {rule: outputs it must re-run}).
CASES = {
    # The gate reads the OOD sets and every teacher and training job waits for the gate, so all re-run.
    "config: ood temperature (evaluations, the gate and what waits for it)": (
        _config([f"eval_sets.{name}" for name in OOD_SETS], temperature=0.9),
        merge(
            {"evaluate": evaluations(methods=ALL_METHODS) | evaluations(eval_sets=set(OOD_SETS), base=True)},
            {"gate": {f"results/{MODEL}/gate.json"}, "teacher_traces": set(grid.teacher_targets(SMOKE))},
            trained(ALL_METHODS),
            REPORT,
        ),
    ),
    "config: train-set temperature (evaluations only: not a gate set)": (
        _config("eval_sets.train", temperature=0.9),
        merge({"evaluate": evaluations(methods=ALL_METHODS, eval_sets={"train"}, base=True)}, REPORT),
    ),
    "config: sft lr": (
        _config("sft", lr=0.002),
        merge(trained(["sft"]), {"evaluate": evaluations(methods=["sft"])}, REPORT),
    ),
    "config: onpolicy alpha": (
        _config("onpolicy", alpha=0.25),
        merge(trained(["onpolicy"]), {"evaluate": evaluations(methods=["onpolicy"])}, REPORT),
    ),
    "config: teacher samples": (
        _config("teacher", n_samples=3),
        merge(
            {"teacher_traces": {p for p in grid.teacher_targets(SMOKE)}},
            trained(["sft"]),
            {"evaluate": evaluations(methods=["sft"])},
            REPORT,
        ),
    ),
    "code: selfdistill/plots.py": (
        ("code", "selfdistill/plots.py"),
        {"figures": FIGURES, "findings": REPORT["findings"]},
    ),
    # The claims and the page (and the figures drawn from the statistics), never the gate and training.
    "code: selfdistill/findings.py": (
        ("code", "selfdistill/findings.py"),
        {rule: REPORT[rule] for rule in ("statistics", "figures", "findings")},
    ),
    # The draws' statistics and their section of the page (the figures read the statistics' tables).
    "code: selfdistill/draws.py": (
        ("code", "selfdistill/draws.py"),
        {rule: REPORT[rule] for rule in ("statistics", "figures", "findings")},
    ),
    "code: selfdistill/backends/vllm.py (toy model uses hf)": (("code", "selfdistill/backends/vllm.py"), {}),
    "code: selfdistill/train/losses.py": (
        ("code", "selfdistill/train/losses.py"),
        merge(trained(grid.ROLLOUT_METHODS), {"evaluate": evaluations(methods=grid.ROLLOUT_METHODS)}, REPORT),
    ),
    "code: scripts/summarize.py": (("code", "scripts/summarize.py"), REPORT),
    "comment only: selfdistill/io.py (every job imports it)": (("comment", "selfdistill/io.py"), {}),
    "formatting only: selfdistill/grading.py": (("format", "selfdistill/grading.py"), {}),
    "touch: scripts/evaluate.py": (("touch", "scripts/evaluate.py"), {}),
}


def _edited(kind: str, text: str) -> str:
    if kind == "code":  # a change of meaning: a new module-level name
        return text + "\n_EDITED = True\n"
    if kind == "comment":
        return text + "\n# edited: a comment changes nothing a job computes\n"
    if kind == "format":  # blank lines between top-level definitions, a different line wrapping
        return text.replace("\n\n\ndef ", "\n\n\n\ndef ").replace("(\n", "(  \n")
    raise ValueError(kind)


def planned_after(checkout: Path, edit) -> dict[str, set[str]]:
    """Jobs a dry run plans after applying an edit to a completed checkout (the edit is undone after)."""
    kind, what = edit
    if kind == "config":
        return planned_outputs(checkout, write_overlay(checkout / "edited.yaml", what))
    path = checkout / what
    original, stat = path.read_text(), path.stat()
    if kind == "touch":
        os.utime(path)
    else:
        path.write_text(_edited(kind, original))
    try:
        return planned_outputs(checkout)
    finally:
        path.write_text(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def compare(planned: dict, expected: dict) -> dict:
    flat = lambda jobs: {(rule, out) for rule, outs in jobs.items() for out in outs}  # noqa: E731
    extra, missed = flat(planned) - flat(expected), flat(expected) - flat(planned)
    return {
        "expected": len(flat(expected)),
        "planned": len(flat(planned)),
        "extra": sorted(f"{r}: {o}" for r, o in extra),
        "missed": sorted(f"{r}: {o}" for r, o in missed),
    }


def run_cases() -> dict:
    """Run the smoke config in a copy of this checkout, then compare each case's planned jobs."""
    with tempfile.TemporaryDirectory() as tmp:
        checkout = copy_checkout(Path(tmp) / "checkout")
        run = snakemake(checkout, "--cores", str(os.cpu_count()))
        if run.returncode:
            raise RuntimeError(run.stderr[-3000:])
        return {name: compare(planned_after(checkout, edit), expected) for name, (edit, expected) in CASES.items()}
