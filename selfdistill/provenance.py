"""Print what produced workflow outputs: `python -m selfdistill.provenance FILE.parquet [...]`.

An adapter directory is described by the log.parquet written beside it by the same job.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from selfdistill.io import read_provenance


def describe(path) -> dict:
    path = Path(path)
    if path.is_dir() and (path.parent / "log.parquet").exists():
        path = path.parent / "log.parquet"
    return {"file": str(path), **read_provenance(path)}


def main(argv=None) -> int:
    paths = (argv if argv is not None else sys.argv[1:]) or []
    if not paths:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for p in paths:
        try:
            print(json.dumps(describe(p), indent=2, sort_keys=True))
        except (OSError, ValueError) as exc:
            print(f"{p}: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
