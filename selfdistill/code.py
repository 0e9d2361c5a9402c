"""Which package modules a job's script runs, and a hash of their meaning: the `code` param of each
rule, so editing a module re-runs exactly the jobs that import it, directly or through another
module (a hand-kept list per rule drifts; a dozen module inputs per job slow DAG building).

The hash is of each file's syntax tree without docstrings: comments, docstrings (and the help
strings under config fields) and formatting change nothing, so neither a comment edit nor a
formatter re-runs a job. The script itself is
hashed too, which makes Snakemake's own script tracking (by modification time) unnecessary: the
profiles turn it off (`rerun-triggers` without `code`), so a `touch` or a checkout re-runs nothing.

Imports of the generation backends inside `selfdistill.backends` are not followed: a job runs the
one its model's config names, which the rule adds."""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = "selfdistill"
PACKAGE_DIR = Path(__file__).resolve().parent
BACKENDS = f"{PACKAGE}.backends"


def _module_file(name: str) -> Path | None:
    """The file of package module `name` (a dotted path), if it exists."""
    parts = name.split(".")[1:]
    base = PACKAGE_DIR.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_names(tree: ast.AST) -> set[str]:
    """Dotted names a module imports anywhere (module level or inside functions)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg.mod import x`: x may be a submodule or a name defined in pkg.mod.
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@functools.cache
def imported_modules(path: Path) -> frozenset[Path]:
    """Package module files that the file at `path` imports, transitively, with their packages' __init__."""
    found: set[Path] = set()
    todo = [Path(path)]
    while todo:
        current = todo.pop()
        for name in _imported_names(ast.parse(current.read_text())):
            if not (name == PACKAGE or name.startswith(PACKAGE + ".")):
                continue
            if current == PACKAGE_DIR / "backends/__init__.py" and name.startswith(BACKENDS + "."):
                continue
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__ too
                module = _module_file(".".join(parts[:depth]))
                if module and module not in found:
                    found.add(module)
                    todo.append(module)
    return frozenset(found)


def _is_text(statement: ast.stmt) -> bool:
    """A bare string: a docstring, or the help under a config field (selfdistill.settings)."""
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def meaning(source: str) -> bytes:
    """A Python source's syntax tree without bare strings (they do nothing) and positions: what
    the code does."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and any(_is_text(s) for s in body):
            node.body = [s for s in body if not _is_text(s)] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False).encode()


@functools.cache
def code_hash(script: Path, backends: tuple[str, ...] = ()) -> str:
    """Hash of the meaning of `script` and the package modules it runs (plus the named generation
    backends and their imports)."""
    script = Path(script)
    files = set(imported_modules(script))
    for backend in backends:
        module = PACKAGE_DIR / f"backends/{backend}.py"
        files |= {module} | imported_modules(module)
    digest = hashlib.sha256(b"script\0" + _file_meaning(script))
    for file in sorted(files):
        digest.update(file.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0" + _file_meaning(file))
    return digest.hexdigest()[:16]


@functools.cache
def _file_meaning(path: Path) -> bytes:
    return hashlib.sha256(meaning(path.read_text())).digest()
