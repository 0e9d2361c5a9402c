import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from selfdistill.table1 import render, select_problems, selected_ids, table_rows

REPO = Path(__file__).resolve().parents[1]


def unguided(correct_by_problem):
    rows = []
    for pid, correct in correct_by_problem.items():
        rows += [
            {
                "problem_id": pid,
                "sample": s,
                "correct": bool(c),
                "response": f"{pid}-{s}",
                "n_tokens": 10 + s,
                "epistemic_count": int(not c),
            }
            for s, c in enumerate(correct)
        ]
    return pd.DataFrame(rows)


def test_selection_keeps_hard_problems_in_order_with_the_models_own_solution():
    samples = unguided({"a": [1, 1, 1, 1], "b": [0, 1, 0, 0], "c": [0, 0, 0, 0], "d": [0, 0, 1, 1], "e": [0, 0, 0, 1]})
    assert selected_ids(samples, [1, 2], 2) == ["b", "d"]
    problems = pd.DataFrame(
        {"problem_id": list("abcde"), "problem": list("ABCDE"), "answer": list("12345"), "solution": ["dataset"] * 5}
    )
    chosen = select_problems(samples, problems, [1, 3], 10)
    assert chosen["problem_id"].tolist() == ["b", "d", "e"]
    assert chosen["solution"].tolist() == ["b-1", "d-2", "e-3"]  # the first correct sample of each
    with_unsolved = select_problems(samples, problems, [0, 0], 10)
    assert with_unsolved["solution"].tolist() == ["dataset"]  # "c": never solved, the dataset's solution
    with pytest.raises(ValueError, match="no problem has 4-4 of its unguided samples correct.*n_candidates"):
        selected_ids(samples.iloc[4:], [4, 4], 1)


def test_rows_and_paper_layout():
    samples = unguided({"a": [0, 1], "b": [1, 1]})
    rows = table_rows({"none": samples, "solution": samples.assign(correct=True)})
    assert rows["score"].tolist() == [0.75, 1.0] and rows["length"].tolist() == [10.5, 10.5]
    page = render(rows, "r1", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B")
    assert "| none | 0.75 | 10 | 0.2 | 0.30 | 13,054 | 182.5 |" in page
    assert "paper" not in render(rows, "toy", "toy")


def test_table1_rules_end_to_end(tmp_path):
    config = yaml.safe_load((REPO / "config/smoke.yaml").read_text())
    config["table1"] = {
        "dataset": "toy",
        "split": "ood",
        "n_candidates": 4,
        "n_problems": 3,
        "correct_range": [0, 2],
        "richness": ["none", "solution", "solution_nothink", "regen"],
        "sampling": {"n_samples": 2, "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 48, "seed": 0},
    }
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    run = subprocess.run(
        [
            "snakemake",
            "-s",
            str(REPO / "Snakefile"),
            "-d",
            str(tmp_path),
            "--configfile",
            str(configfile),
            "--cores",
            "2",
            "results/table1.md",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-5000:]
    table = pd.read_parquet(tmp_path / "results/summary/table1.parquet")
    assert table["richness"].tolist() == ["none", "solution", "solution_nothink", "regen"]
    assert (table.loc[table["richness"] != "regen", "n_problems"] == 3).all()
    assert "| solution |" in (tmp_path / "results/table1.md").read_text()
