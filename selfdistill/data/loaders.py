"""Load problems from any source into the normalized schema (see PROBLEM_COLUMNS)."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import pandas as pd

from selfdistill.data import PROBLEM_COLUMNS, toy
from selfdistill.settings.data import DatasetConfig

log = logging.getLogger(__name__)


def normalize_text(text: str) -> str:
    """The key used for deduplication: case- and whitespace-insensitive."""
    return re.sub(r"\s+", " ", text).strip().lower()


def _read_source(spec: DatasetConfig) -> pd.DataFrame:
    loader = spec.loader
    if loader == "toy":
        return toy.generate_problems(spec.toy)
    if loader in ("parquet", "jsonl"):
        path = Path(spec.path)
        if not path.exists():
            raise FileNotFoundError(f"dataset file {path} does not exist: fix `path` in the dataset's config")
        if loader == "jsonl":
            _check_json_lines(path)
        try:
            return pd.read_parquet(path) if loader == "parquet" else pd.read_json(path, lines=True, encoding="utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(
                f"dataset file {path} is not valid UTF-8 ({error.reason} at byte {error.start}): "
                "re-encode it, e.g. `iconv -f latin1 -t utf-8`"
            ) from error
    if loader == "hf":
        import datasets

        if Path(spec.path).is_dir() and (Path(spec.path) / "dataset_info.json").exists():
            ds = datasets.load_from_disk(spec.path)  # a dataset saved with save_to_disk
            if isinstance(ds, datasets.DatasetDict):
                ds = ds[spec.hf_split]
        else:
            ds = datasets.load_dataset(spec.path, spec.hf_name, split=spec.hf_split)
        return ds.to_pandas()
    raise ValueError(f"unknown loader {loader!r}: use toy, parquet, jsonl or hf")


def _check_json_lines(path: Path) -> None:
    """JSON Lines holds one object per line: name the two common mix-ups before pandas misreads them."""
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
    if not head:
        raise ValueError(f"dataset file {path} is empty: fix `path` in the dataset's config, or fill the file")
    if head.startswith(b"["):
        raise ValueError(
            f"dataset file {path} is a JSON array, not JSON Lines (one object per line): convert it "
            f"(`jq -c '.[]' {path} > {path.with_suffix('.jsonl')}`) and point `path` at the result"
        )


def _as_text(value) -> str:
    """Chat-style prompts (a list of {role, content}) become their last user message."""
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist") and not isinstance(value, str):
        messages = list(value)
        users = [m["content"] for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        if users:
            return users[-1]
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def _column(raw: pd.DataFrame, source: str) -> pd.Series:
    """A source column; "a.b" reads key b of the dicts in column a (DAPO's reward_model.ground_truth)."""
    top, _, key = source.partition(".")
    return raw[top].map(lambda d: d.get(key) if isinstance(d, dict) else None) if key else raw[top]


def extract_problem(text: str, pattern: re.Pattern) -> str | None:
    """The bare problem inside a source's own instruction wrapper (group `problem` of the pattern)."""
    match = pattern.fullmatch(text)
    return match.group("problem").strip() if match else None


def normalize(raw: pd.DataFrame, spec: DatasetConfig, name: str) -> pd.DataFrame:
    """Rename mapped columns, fill defaults, deduplicate by problem text, check what is left."""
    mapping = spec.columns or {}  # our column -> source column
    missing = sorted(src for ours, src in mapping.items() if src.partition(".")[0] not in raw.columns)
    if missing:
        raise ValueError(
            f"dataset {name!r}: columns {missing} not found (has {sorted(raw.columns)}): fix `columns` in its config"
        )
    df = pd.DataFrame({ours: _column(raw, src) for ours, src in mapping.items()})
    for col in ("problem", "answer"):
        if col not in df and col in raw:
            df[col] = raw[col]
        if col not in df:
            raise ValueError(f"dataset {name!r} has no {col!r} column: map one under `columns` in its config")
    df["problem"] = df["problem"].map(_as_text)
    df["answer"] = df["answer"].map(_as_text)
    if spec.problem_pattern:
        # Re-prompting: drop the source's own answer-format instruction; our prompt template adds \boxed{}.
        bare = df["problem"].map(lambda t: extract_problem(t, re.compile(spec.problem_pattern, re.S)))
        if bare.isna().any():
            example = df["problem"][bare.isna()].iloc[0][:200]
            raise ValueError(
                f"dataset {name!r}: {int(bare.isna().sum())} problems do not match problem_pattern, e.g. {example!r}: "
                "fix `problem_pattern` in its config"
            )
        df["problem"] = bare
    df["solution"] = df["solution"].map(_as_text) if "solution" in df else raw.get("solution", "")
    df["solution"] = df["solution"].fillna("") if isinstance(df["solution"], pd.Series) else ""
    if "problem_id" not in df:
        df["problem_id"] = (
            raw["problem_id"].astype(str)
            if "problem_id" in raw
            else [f"{name}-" + hashlib.sha1(normalize_text(p).encode()).hexdigest()[:12] for p in df["problem"]]
        )
    df["source"] = raw["source"].astype(str) if "source" in raw and "source" not in mapping else name
    if "split" not in df:
        df["split"] = raw["split"] if "split" in raw else spec.split

    before = len(df)
    key = df["problem"].map(normalize_text) if spec.deduplicate == "text" else df["problem_id"]
    df = df[~key.duplicated()].reset_index(drop=True)
    if len(df) < before:
        log.info(
            "dataset %s: dropped %d duplicate problems by %s (%d left)",
            name,
            before - len(df),
            spec.deduplicate,
            len(df),
        )
    return exclude_bad_rows(df, spec, name)[list(PROBLEM_COLUMNS)].astype(str)


def bad_rows(df: pd.DataFrame, check_answers: bool) -> dict[str, pd.Series]:
    """reason -> mask of the rows that no experiment can use."""
    from selfdistill.grading import parses

    empty_answer = df["answer"].str.strip() == ""
    reasons = {
        "empty problem": df["problem"].str.strip() == "",
        "empty answer": empty_answer,
        "duplicate problem_id": df["problem_id"].astype(str).duplicated(),
    }
    if check_answers:  # an answer math-verify cannot read can never be graded correct
        reasons["answer math-verify cannot parse"] = ~empty_answer & ~df["answer"].map(parses)
    return reasons


def exclude_bad_rows(df: pd.DataFrame, spec: DatasetConfig, name: str) -> pd.DataFrame:
    """Stop on bad rows (`on_bad_rows: error`, the default), or drop them and log each reason's count."""
    reasons = {r: m for r, m in bad_rows(df, spec.check_answers).items() if m.any()}
    if not reasons:
        return df
    summary = "; ".join(
        f"{int(m.sum())} with {r} (e.g. problem_id {df['problem_id'][m].iloc[0]!r}: {df['answer'][m].iloc[0][:60]!r})"
        for r, m in reasons.items()
    )
    if spec.on_bad_rows == "error":
        raise ValueError(
            f"dataset {name!r} has unusable rows: {summary}. Fix the data, or set datasets.{name}.on_bad_rows: drop "
            "to exclude them (each count is logged)"
        )
    drop = pd.concat(list(reasons.values()), axis=1).any(axis=1)
    if drop.all():
        raise ValueError(
            f"dataset {name!r}: every one of its {len(df)} rows is unusable: {summary}. Fix the data "
            "(on_bad_rows: drop would leave no problem)"
        )
    log.warning("dataset %s: excluded %d of %d rows: %s", name, int(drop.sum()), len(df), summary)
    return df[~drop].reset_index(drop=True)


def load_problems(spec: DatasetConfig, name: str) -> pd.DataFrame:
    raw = _read_source(spec)
    if raw.empty:
        raise ValueError(f"dataset {name!r} has no rows ({spec.path or 'toy generator'}): fix its source or `hf_split`")
    problems = normalize(raw, spec, name)
    log.info("dataset %s: %d problems, splits %s", name, len(problems), problems["split"].value_counts().to_dict())
    return problems
