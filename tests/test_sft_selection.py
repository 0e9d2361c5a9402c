import pandas as pd
import pytest

from selfdistill.train.sft import select_traces


def _traces(counts_by_problem, correct=True):
    rows = []
    for pid, counts in counts_by_problem.items():
        for sample, c in enumerate(counts):
            rows.append(
                {
                    "problem_id": pid,
                    "sample": sample,
                    "epistemic_count": c,
                    "n_tokens": 10 + 5 * c,
                    "correct": correct,
                    "kept": correct,
                }
            )
    return pd.DataFrame(rows)


def test_preserve_picks_traces_closest_to_the_models_own_count():
    teacher = _traces({"a": [0, 1, 4, 6], "b": [0, 0, 2]})
    unguided = _traces({"a": [3, 5, 4], "b": [2, 2, 9]})
    selected, report = select_traces(teacher, unguided, "preserve", per_problem=1)
    assert selected.set_index("problem_id")["epistemic_count"].to_dict() == {"a": 4, "b": 2}
    row = report.set_index("problem_id").loc["a"]
    assert row["target_epistemic_count"] == 4 and row["before_epistemic_count"] == pytest.approx(11 / 4)
    assert row["after_epistemic_count"] == 4 and row["after_mean_tokens"] == 30


def test_suppress_picks_the_fewest_and_standard_keeps_all():
    teacher = _traces({"a": [3, 1, 4, 0]})
    unguided = _traces({"a": [3]})
    assert select_traces(teacher, unguided, "suppress", 2)[0]["epistemic_count"].tolist() == [0, 1]
    assert len(select_traces(teacher, unguided, "standard", 1)[0]) == 4


def test_wrong_unguided_traces_do_not_set_the_target():
    teacher = _traces({"a": [0, 5]})
    unguided = pd.concat([_traces({"a": [0]}), _traces({"a": [9, 9, 9]}, correct=False)])
    selected, _ = select_traces(teacher, unguided, "preserve", 1)
    assert selected["epistemic_count"].tolist() == [0]
