"""Parquet I/O: every table is written atomically and carries provenance metadata."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

PROVENANCE_KEY = b"selfdistill.provenance"
_TRACKED_PACKAGES = ("selfdistill", "torch", "transformers", "peft", "vllm", "math-verify")


def canonical_json(value) -> str:
    """Sorted, compact JSON: the one rendering used for params and hashes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def config_hash(value) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:16]


def code_version() -> str:
    """Git commit of the checkout holding this package (with '+dirty'), else the package version."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", str(here)], cwd=here, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        from selfdistill import __version__

        return __version__


def package_versions() -> dict:
    versions = {}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def provenance(config_slice, seed=None) -> dict:
    return {
        "code_version": code_version(),
        "config_hash": config_hash(config_slice),
        "config": config_slice,
        "seed": seed,
        "packages": package_versions(),
    }


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def apply_umask(directory) -> None:
    """Give every file under `directory` the mode the umask gives new files: libraries that write
    through temporary files (safetensors) leave 0600, unreadable to colleagues on shared storage."""
    mode = 0o666 & ~_umask()
    for file in Path(directory).rglob("*"):
        if file.is_file():
            os.chmod(file, mode)


@contextmanager
def atomic_path(path):
    """Yield a temporary sibling path; rename it onto `path` only if the block succeeds.

    The file gets the mode any new file gets under the umask (mkstemp's own is 0600, which would
    hide results from colleagues on a shared project directory)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_table(table, path, config_slice, seed=None) -> None:
    """Write a pandas DataFrame or Arrow table to Parquet with provenance metadata, atomically."""
    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[PROVENANCE_KEY] = canonical_json(provenance(config_slice, seed)).encode()
    table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_table(path, columns=None):
    return pq.read_table(path, columns=columns).to_pandas()


def read_provenance(path) -> dict:
    meta = pq.read_schema(path).metadata or {}
    if PROVENANCE_KEY not in meta:
        raise ValueError(f"{path} has no provenance metadata: it was not written by selfdistill.io.write_table")
    return json.loads(meta[PROVENANCE_KEY])


def write_json(obj, path) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
