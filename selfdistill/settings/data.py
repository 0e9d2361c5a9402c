"""Sections `datasets.<name>` (and its `toy` generator) and the checks on datasets and coverage."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from selfdistill.settings.core import Constraint, NonNegativeInt, PositiveInt, optional

TermsRange = Annotated[tuple[Annotated[int, Constraint(minimum=2)], ...], Constraint(minItems=2, maxItems=2)]
ProblemColumn = Literal["problem_id", "problem", "solution", "answer", "source", "split"]


@dataclass(frozen=True, kw_only=True)
class ToyDataConfig:
    """`datasets.<name>.toy`: the toy problems of each split (sums of single-digit terms)."""

    seed: int
    """the generator's seed: the same problems for the same seed"""
    n_train: PositiveInt
    """distinct problems of the train split (coverage subsets are drawn from it)"""
    n_test: NonNegativeInt
    """held-out in-domain problems"""
    n_ood: NonNegativeInt
    """out-of-domain problems"""
    train_terms: TermsRange
    """[low, high] number of terms, train and test"""
    ood_terms: TermsRange
    """[low, high] number of terms, ood"""
    max_operand: Annotated[int, Constraint(minimum=2, maximum=99)]
    """largest operand of a term"""


@dataclass(frozen=True, kw_only=True)
class DatasetConfig:
    """`datasets.<name>`: a problem source, loaded into the normalized problem table."""

    loader: Literal["toy", "parquet", "jsonl", "hf"]
    """the toy generator, a local Parquet or JSON Lines file, or a Hugging Face dataset"""
    path: str | None = optional()
    """file (parquet / jsonl), or hub id / save_to_disk folder (hf)"""
    hf_name: str | None = optional()
    """a hub dataset's configuration name"""
    hf_split: str = "train"
    """the split of a hub dataset (or of a save_to_disk DatasetDict) to load"""
    split: str = "train"
    """split label given to every row when the source has none"""
    on_bad_rows: Literal["error", "drop"] = "error"
    """empty, duplicate-id or unparsable-answer rows: stop, or exclude them (counted in the log)"""
    check_answers: bool = True
    """check that math-verify can parse every gold answer"""
    deduplicate: Literal["text", "id"] = "text"
    """drop repeated problems by their text (case and whitespace ignored; DAPO's raw parquet repeats each
    ~100x), or by problem_id only (a file whose rows are a training set as it was run, e.g. the paper's
    subsets)"""
    problem_pattern: str | None = optional()
    """regex with a group `problem`: the bare problem inside the source's own instructions"""
    columns: dict[ProblemColumn, str] | None = optional()
    """our column -> the source's column ('a.b' = key b of the dicts in column a)"""
    toy: ToyDataConfig | None = optional()
    """the toy generator's settings (loader toy)"""

    @staticmethod
    def check(config: dict, error) -> None:
        datasets = config["datasets"]
        if config["train_dataset"] not in datasets:
            error("train_dataset", config["train_dataset"], "is not under datasets", "add it or fix the name")
        for name, spec in datasets.items():
            if spec["loader"] == "toy" and "toy" not in spec:
                error(f"datasets.{name}.loader", "toy", "needs a `toy:` block", f"add datasets.{name}.toy")
            if spec["loader"] != "toy" and "path" not in spec:
                error(f"datasets.{name}.loader", spec["loader"], "needs `path`", f"add datasets.{name}.path")
            if spec["loader"] in ("parquet", "jsonl") and "path" in spec and not Path(spec["path"]).exists():
                error(f"datasets.{name}.path", spec["path"], "does not exist", "fix the path")
            for key in ("train_terms", "ood_terms"):
                if "toy" in spec and spec["toy"][key][0] > spec["toy"][key][1]:
                    error(
                        f"datasets.{name}.toy.{key}",
                        spec["toy"][key],
                        "is an empty range",
                        "use [low, high] with low <= high",
                    )
        for coverage, name in config["coverage_files"].items():
            if name not in datasets:
                error(
                    f"coverage_files.{coverage}",
                    name,
                    "is not under datasets",
                    "add the dataset (its loader, path and columns) or fix the name",
                )
        train = datasets.get(config["train_dataset"], {})
        if train.get("loader") == "toy":
            n_train = train["toy"]["n_train"]
            too_big = [c for c in config["coverage"] if c != "full" and c > n_train]
            if too_big:
                error(
                    "coverage",
                    config["coverage"],
                    f"has {too_big}, more than the {n_train} training problems of dataset {config['train_dataset']!r}",
                    f"lower coverage or raise datasets.{config['train_dataset']}.toy.n_train",
                )
