import json
from pathlib import Path

import pandas as pd
import pytest

from selfdistill.data import PROBLEM_COLUMNS, toy
from selfdistill.data.coverage import coverage_subset
from selfdistill.data.loaders import load_problems

from configs import dataset

TOY = {
    "seed": 1,
    "n_train": 100,
    "n_test": 20,
    "n_ood": 20,
    "train_terms": [3, 4],
    "ood_terms": [5, 6],
    "max_operand": 9,
}


def load(spec: dict, name: str):
    """load_problems on a partial dataset spec, with the schema's defaults filled in."""
    return load_problems(dataset(spec), name)


@pytest.fixture
def problems():
    return load({"loader": "toy", "toy": TOY}, "toy")


def test_toy_problems_are_correct_and_distinct(problems):
    assert list(problems.columns) == list(PROBLEM_COLUMNS)
    assert problems["problem"].is_unique
    assert problems.groupby("split").size().to_dict() == {"train": 100, "test": 20, "ood": 20}
    for p in problems.itertuples():
        assert str(sum(toy.parse_terms(p.problem))) == p.answer
        assert p.solution.endswith(f"\\boxed{{{p.answer}}}.")
    ood_lengths = {len(toy.parse_terms(p)) for p in problems.loc[problems["split"] == "ood", "problem"]}
    assert ood_lengths <= {5, 6}


def test_toy_is_deterministic():
    a = load({"loader": "toy", "toy": TOY}, "toy")
    b = load({"loader": "toy", "toy": TOY}, "toy")
    pd.testing.assert_frame_equal(a, b)


def test_unguided_traces_hedge_and_correct():
    import random

    rng = random.Random(0)
    trace = toy.unguided_trace([5, 8, 9], rng, p_error=1.0, p_verify=0.0)
    assert trace.count("Wait") + trace.count("Hmm") == 2
    assert trace.endswith("\\boxed{22}.")


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_coverage_subsets_are_nested(problems, seed):
    ids = [set(coverage_subset(problems, c, seed, 64)["problem_id"]) for c in (1, 8, 64)]
    assert [len(s) for s in ids] == [1, 8, 64]
    assert ids[0] < ids[1] < ids[2]


def test_small_subsets_are_repeated_to_fill_the_batch(problems):
    one = coverage_subset(problems, 1, 0, 64)
    eight = coverage_subset(problems, 8, 0, 64)
    assert len(one) == 64 and one["problem_id"].nunique() == 1
    assert len(eight) == 64 and eight["problem_id"].value_counts().eq(8).all()
    assert len(coverage_subset(problems, 100, 0, 64)) == 100


def test_seeds_give_different_subsets(problems):
    assert set(coverage_subset(problems, 8, 0, 8)["problem_id"]) != set(
        coverage_subset(problems, 8, 1, 8)["problem_id"]
    )


def test_full_coverage_is_every_training_problem_containing_the_others(problems):
    full = coverage_subset(problems, "full", 0, 64)
    train_ids = set(problems.loc[problems["split"] == "train", "problem_id"])
    assert set(full["problem_id"]) == train_ids and len(full) == len(train_ids)
    assert set(coverage_subset(problems, 8, 0, 64)["problem_id"]) < set(full["problem_id"])


def test_coverage_larger_than_dataset_is_refused(problems):
    with pytest.raises(ValueError, match="coverage 500 exceeds the 100 training problems"):
        coverage_subset(problems, 500, 0, 64)


def _raw():
    return pd.DataFrame(
        {
            "question": ["What is 1+1?", "what is  1+1?", "What is 2+2?"],
            "gold": ["2", "2", "4"],
            "src": ["a", "a", "b"],
        }
    )


def test_local_files_with_column_mapping_and_dedupe(tmp_path):
    raw = _raw()
    raw.to_parquet(tmp_path / "p.parquet")
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in raw.to_dict("records")))
    for loader, name in (("parquet", "p.parquet"), ("jsonl", "p.jsonl")):
        spec = {
            "loader": loader,
            "path": str(tmp_path / name),
            "columns": {"problem": "question", "answer": "gold"},
            "split": "test",
        }
        df = load(spec, "mine")
        assert list(df.columns) == list(PROBLEM_COLUMNS)
        assert df["problem"].tolist() == ["What is 1+1?", "What is 2+2?"]  # case/space duplicate dropped
        assert set(df["split"]) == {"test"} and set(df["source"]) == {"mine"}
        assert df["problem_id"].is_unique


def test_hf_dataset_saved_locally(tmp_path):
    datasets = pytest.importorskip("datasets")
    # The shape of DAPO-Math-17k: a chat-style prompt list and the answer nested in a dict column.
    ds = datasets.Dataset.from_dict(
        {
            "prompt": [[{"role": "user", "content": "Find 2+3."}], [{"role": "user", "content": "Find 4+4."}]],
            "answer": ["5", "8"],
        }
    )
    ds.save_to_disk(str(tmp_path / "ds"))
    df = load(
        {"loader": "hf", "path": str(tmp_path / "ds"), "columns": {"problem": "prompt", "answer": "answer"}}, "dapo"
    )
    assert df["problem"].tolist() == ["Find 2+3.", "Find 4+4."]
    assert df["answer"].tolist() == ["5", "8"]


def test_missing_column_is_named(tmp_path):
    _raw().to_parquet(tmp_path / "p.parquet")
    spec = {
        "loader": "parquet",
        "path": str(tmp_path / "p.parquet"),
        "columns": {"problem": "prompt", "answer": "gold"},
    }
    with pytest.raises(ValueError, match=r"columns \['prompt'\] not found"):
        load(spec, "mine")


def test_bad_rows_stop_with_counts_or_are_dropped_and_logged(tmp_path, caplog):
    raw = pd.DataFrame(
        {
            "id": ["p1", "p2", "p3", "p3", "p5", "p6"],
            "question": ["What is 1+1?", " ", "What is 3+3?", "What is 4+4?", "What is 5+5?", "What is 6+6?"],
            "gold": ["2", "4", "6", "8", "\\frac{1}{", " "],
        }
    )
    raw.to_parquet(tmp_path / "p.parquet")
    spec = {
        "loader": "parquet",
        "path": str(tmp_path / "p.parquet"),
        "columns": {"problem_id": "id", "problem": "question", "answer": "gold"},
    }
    with pytest.raises(ValueError) as error:
        load(spec, "mine")
    message = str(error.value)
    for part in (
        "1 with empty problem",
        "1 with empty answer",
        "1 with duplicate problem_id (e.g. problem_id 'p3'",
        "1 with answer math-verify cannot parse (e.g. problem_id 'p5'",
        "on_bad_rows: drop",
    ):
        assert part in message, message
    with caplog.at_level("WARNING"):
        kept = load({**spec, "on_bad_rows": "drop"}, "mine")
    assert kept["problem_id"].tolist() == ["p1", "p3"]
    assert "excluded 4 of 6 rows" in caplog.text


@pytest.mark.parametrize(
    "content, message",
    [
        ("", r"p.jsonl is empty"),
        ("  \n\n", r"p.jsonl is empty"),
        ('[{"problem": "1+1?", "answer": "2"}]\n', r"p.jsonl is a JSON array, not JSON Lines .*jq -c"),
    ],
)
def test_empty_and_json_array_files_are_named(tmp_path, content, message):
    (tmp_path / "p.jsonl").write_text(content)
    with pytest.raises(ValueError, match=message):
        load({"loader": "jsonl", "path": str(tmp_path / "p.jsonl")}, "mine")


def test_dropping_every_row_is_an_error_not_an_empty_dataset(tmp_path):
    pd.DataFrame({"problem": ["What is 1+1?", "What is 2+2?"], "answer": ["", " "]}).to_parquet(tmp_path / "p.parquet")
    with pytest.raises(ValueError, match=r"every one of its 2 rows is unusable: 2 with empty answer"):
        load({"loader": "parquet", "path": str(tmp_path / "p.parquet"), "on_bad_rows": "drop"}, "mine")


def test_non_utf8_file_is_named(tmp_path):
    (tmp_path / "p.jsonl").write_bytes('{"problem": "Caf\xe9 costs 2+2?", "answer": "4"}\n'.encode("latin-1"))
    with pytest.raises(ValueError, match=r"p.jsonl is not valid UTF-8 .*iconv"):
        load({"loader": "jsonl", "path": str(tmp_path / "p.jsonl")}, "mine")


DAPO_INSTRUCTION = (
    "Solve the following math problem step by step. The last line of your response should be of the form "
    "Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n{}\n\n"
    'Remember to put your answer on its own line after "Answer:".'
)


def paper_config():
    """config/paper.yaml on the default, as composed (not checked: its hub ids need not be cached)."""
    from selfdistill.config import compose

    config = compose(Path(__file__).resolve().parents[1] / "config/paper.yaml")
    config["eval_sets"] = {k: v for k, v in config["eval_sets"].items() if v is not None}  # nulls delete
    return config


def test_paper_datasets_load_from_local_files_of_the_same_shape(tmp_path):
    """Each paper dataset's spec from config/paper.yaml, pointed at a small local file of its layout."""
    datasets = pytest.importorskip("datasets")
    shapes = {
        # DAPO-Math-17k: chat prompt wrapped in its own "Answer:" instruction, answer nested, each prompt repeated.
        "dapo": {
            "data_source": ["math_dapo"] * 3,
            "prompt": [
                [{"role": "user", "content": DAPO_INSTRUCTION.format(p)}]
                for p in ("Find $2+3$.", "Find $x$ if $x^2=4$, $x>0$.", "Find $2+3$.")
            ],
            "ability": ["MATH"] * 3,
            "reward_model": [
                {"ground_truth": "5", "style": "rule-lighteval/MATH_v2"},
                {"ground_truth": "2", "style": "x"},
                {"ground_truth": "5", "style": "x"},
            ],
            "extra_info": [{"index": "a"}, {"index": "b"}, {"index": "c"}],
        },
        "aime24": {
            "id": [60, 61],
            "problem": ["Find $m+n$.", "How many?"],
            "solution": ["...", "..."],
            "answer": ["204", "25"],
            "url": ["u", "v"],
        },
        "aime25": {"problem": ["Find $k$.", "Find $N$."], "answer": ["70", "588"], "id": ["0", "1"]},
        "amc23": {
            "id": [0, 1],
            "question": ["What is $1+1$?", "What is $x$?"],
            "answer": [2.0, 27.0],
            "url": ["u", "v"],
        },
        "math500": {
            "problem": ["Convert $(0,3)$ to polar.", "Compute $1+1$."],
            "solution": ["...", "..."],
            "answer": ["\\left( 3, \\frac{\\pi}{2} \\right)", "2"],
            "subject": ["Precalculus", "Algebra"],
            "level": [2, 1],
            "unique_id": ["test/precalculus/807.json", "test/algebra/1.json"],
        },
    }
    config = paper_config()
    for name, columns in shapes.items():
        path = tmp_path / name
        datasets.Dataset.from_dict(columns).save_to_disk(str(path))
        spec = {**config["datasets"][name], "path": str(path)}
        df = load(spec, name)
        assert list(df.columns) == list(PROBLEM_COLUMNS) and df["problem_id"].is_unique
        assert (df["problem"].str.len() > 0).all() and (df["answer"].str.len() > 0).all()
        eval_splits = {es["split"] for es in config["eval_sets"].values() if es["dataset"] == name}
        assert eval_splits <= set(df["split"]) | {"subset"}
    dapo = load({**config["datasets"]["dapo"], "path": str(tmp_path / "dapo")}, "dapo")
    assert dapo["problem"].tolist() == ["Find $2+3$.", "Find $x$ if $x^2=4$, $x>0$."]  # unwrapped, deduplicated
    assert dapo["answer"].tolist() == ["5", "2"]
    amc = load({**config["datasets"]["amc23"], "path": str(tmp_path / "amc23")}, "amc23")
    assert amc["answer"].tolist() == ["2.0", "27.0"]


def test_problem_pattern_mismatch_is_named(tmp_path):
    pd.DataFrame({"problem": ["Solve: 1+1", "no wrapper here"], "answer": ["2", "3"]}).to_parquet(
        tmp_path / "p.parquet"
    )
    spec = {"loader": "parquet", "path": str(tmp_path / "p.parquet"), "problem_pattern": r"Solve: (?P<problem>.*)"}
    with pytest.raises(ValueError, match=r"1 problems do not match problem_pattern, e.g. 'no wrapper here'"):
        load(spec, "mine")
