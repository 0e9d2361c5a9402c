"""Incremental precision: after a completed run, each edit must re-run exactly the jobs it affects.

    python bench/incremental_precision.py        # ~5 min on 2 cores; writes bench/results/incremental_precision.json

Copies this checkout to a temporary directory, runs config/smoke.yaml there to completion, then for
each edit (a config value; a change of meaning, a comment, a reformatting or a touch of a module or
script) lists the jobs a dry run would execute and compares them with the jobs the edit should
re-run: extra = planned but not expected, missed = expected but not planned (target: 0 and 0).
The cases are tests/incremental.py's; tests/test_workflow.py runs the same ones.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from incremental import run_cases  # noqa: E402


def main():
    results = run_cases()
    for name, r in results.items():
        print(f"{name:60s} expected {r['expected']:4d}  extra {len(r['extra']):3d}  missed {len(r['missed']):3d}")
    (REPO / "bench/results/incremental_precision.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
