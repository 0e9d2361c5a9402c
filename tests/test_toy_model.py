"""The toy model the default config produces has the behaviour the experiment needs.

Pretrains the default toy model (about 5 minutes on 2 cores): `python -m pytest -m toy_properties`.
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
    targets = ["results/models/toy/hf", "results/toy/eval/base/test.parquet", "results/toy/eval/base/ood.parquet"]
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
    from selfdistill import prompts
    from selfdistill.backends import Sampling
    from selfdistill.backends.hf import HFBackend
    from selfdistill.generation import generate_table

    test = pd.read_parquet(default_run / "results/toy/eval/base/test.parquet")
    ood = pd.read_parquet(default_run / "results/toy/eval/base/ood.parquet")
    in_domain, out_of_domain = test["correct"].mean(), ood["correct"].mean()
    assert in_domain >= 0.5
    assert out_of_domain < in_domain - 0.03  # measurably lower (hundreds of samples each)
    assert (test["epistemic_count"] > 0).mean() >= 0.2  # unguided responses hedge

    # With the solution in context the model is more accurate than without, on the same OOD problems.
    problems = pd.read_parquet(default_run / "results/data/toy.parquet")
    ood_problems = problems[problems["split"] == "ood"].head(60).reset_index(drop=True)
    backend = HFBackend.load(str(default_run / "results/models/toy/hf"))
    ood = CONFIG["eval_sets"]["ood"]
    sampling = Sampling(ood["n_samples"], ood["temperature"], ood["top_p"], ood["top_k"], ood["max_new_tokens"], seed=0)
    accuracy = {}
    for richness in ("none", "solution"):
        turns = [
            prompts.teacher_user_turn(TEMPLATES, richness, p.problem, p.answer, p.solution)
            for p in ood_problems.itertuples()
        ]
        accuracy[richness] = generate_table(backend, ood_problems, turns, sampling, GRADING)["correct"].mean()
    assert accuracy["solution"] > accuracy["none"]
