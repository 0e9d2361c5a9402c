"""The toy models the default config produces have the behaviour the experiment needs.

Pretrains both default worlds and runs their gates (about 12 minutes on 2 cores):
`python -m pytest -m toy_properties`.
"""

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from configs import CONFIG, GRADING, TEMPLATES

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("default")
    targets = ["results/toy/gate.json", "results/toy_null/gate.json", "results/toy/eval/base/test.parquet"]
    run = subprocess.run(
        [
            "snakemake",
            "-s",
            str(REPO / "Snakefile"),
            "-d",
            str(workdir),
            "--configfile",
            str(REPO / "config/config.yaml"),
            "--cores",
            "2",
            *targets,
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert run.returncode == 0, run.stderr[-5000:]
    return workdir


@pytest.mark.toy_properties
def test_default_toy_model_properties(default_run):
    import json

    from selfdistill import prompts
    from selfdistill.backends import Sampling
    from selfdistill.backends.hf import HFBackend
    from selfdistill.generation import generate_table

    # Both worlds pass their gates (the workflow would have stopped otherwise): checking is worth
    # OOD accuracy in guess_check and nothing in null, and not in domain.
    check = json.loads((default_run / "results/toy/gate.json").read_text())
    null = json.loads((default_run / "results/toy_null/gate.json").read_text())
    assert check["passed"] and null["passed"]
    assert check["ood_value"] >= 0.15 and abs(null["ood_value"]) <= 0.05
    assert check["in_domain_value"] <= 0.05
    assert check["wait_after_wrong_guess"] - check["wait_after_right_guess"] >= 0.3
    test = pd.read_parquet(default_run / "results/toy/eval/base/test.parquet")
    assert test["correct"].mean() >= 0.8
    assert (test["epistemic_count"] > 0).mean() >= 0.3  # unguided responses check, aloud

    # With the solution in context the model is more accurate than without, on the same OOD problems.
    problems = pd.read_parquet(default_run / "results/data/toy.parquet")
    ood_problems = problems[problems["split"] == "ood"].head(60).reset_index(drop=True)
    backend = HFBackend.load(str(default_run / "results/models/toy/hf"))
    ood = CONFIG["eval_sets"]["ood"]
    sampling = Sampling(ood["n_samples"], ood["temperature"], ood["top_p"], ood["top_k"], ood["max_new_tokens"], seed=0)
    accuracy, checking = {}, {}
    for richness in ("none", "solution"):
        turns = [
            prompts.teacher_user_turn(TEMPLATES, richness, p.problem, p.answer, p.solution)
            for p in ood_problems.itertuples()
        ]
        table = generate_table(backend, ood_problems, turns, sampling, GRADING)
        accuracy[richness] = table["correct"].mean()
        checking[richness] = table["response"].str.contains("let me check").mean()
    assert accuracy["solution"] > accuracy["none"]
    # ... and checks far less often (p_check_guided 0.1 of its pretraining traces; 0.66 vs 0.00 at T = 0.6
    # on 2026-12-06): the teacher that rarely verbalizes checking.
    assert checking["solution"] < checking["none"] / 2 and checking["none"] >= 0.4
