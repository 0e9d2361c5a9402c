"""The code param: which package modules a script runs, found from its imports."""

from pathlib import Path

from selfdistill.code import PACKAGE_DIR, code_hash, imported_modules

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def modules(path) -> set[str]:
    return {p.relative_to(PACKAGE_DIR).as_posix() for p in imported_modules(Path(path))}


def test_imports_are_followed_through_other_modules(tmp_path):
    script = tmp_path / "script.py"
    script.write_text("def main():\n    from selfdistill.generation import generate_table\n")  # a function-level import
    found = modules(script)
    assert {"__init__.py", "generation.py"} <= found
    direct = modules(PACKAGE_DIR / "generation.py")
    assert "grading.py" in direct and direct <= found  # transitive
    assert "plots.py" not in found and "train/rollouts.py" not in found


def test_submodule_imports_include_their_packages():
    found = modules(SCRIPTS / "train_sft.py")
    assert {"train/__init__.py", "train/sft.py", "jobs.py", "models.py"} <= found


def test_generation_backends_come_from_the_model_not_the_dispatcher():
    found = modules(SCRIPTS / "evaluate.py")
    assert {"backends/__init__.py", "generation.py", "grading.py", "evaluation.py"} <= found
    assert not {"backends/hf.py", "backends/vllm.py"} & found
    script = SCRIPTS / "evaluate.py"
    assert len({code_hash(script), code_hash(script, ("hf",)), code_hash(script, ("vllm",))}) == 3
    # Training samples its rollouts through the dispatcher too: the rule adds the rollout engine's backend.
    assert not {"backends/hf.py", "backends/vllm.py"} & modules(SCRIPTS / "train_rollouts.py")
    # ... but evaluation does not depend on training-parallelism code through it.
    assert "distributed.py" not in modules(PACKAGE_DIR / "backends/hf.py")


def test_hash_follows_module_content(tmp_path):
    script = tmp_path / "script.py"
    script.write_text("import selfdistill.plots\n")
    first = code_hash(script)
    assert first == code_hash(script) and len(first) == 16
    other = tmp_path / "other.py"
    other.write_text("import selfdistill.stats\n")
    assert code_hash(other) != first


def test_report_jobs_do_not_depend_on_training_code():
    """Every script imports jobs.py: it must not pull training modules into every job's code param."""
    for script in ("summarize", "figures", "statistics", "coverage_subset"):
        assert not {"distributed.py", "train/rollouts.py"} & modules(SCRIPTS / f"{script}.py"), script
    assert "distributed.py" in modules(SCRIPTS / "train_sft.py")


def test_hash_follows_meaning_not_comments_docstrings_or_formatting(tmp_path, monkeypatch):
    """A comment, a docstring or a formatter changes no job's code param; a change of meaning does."""
    import selfdistill.code as code

    package = tmp_path / "selfdistill"
    package.mkdir()
    (package / "__init__.py").write_text("")
    module = package / "mod.py"
    script = tmp_path / "script.py"
    script.write_text("from selfdistill.mod import f\n")
    monkeypatch.setattr(code, "PACKAGE_DIR", package)

    def hash_of(source):
        module.write_text(source)
        for cached in (code.imported_modules, code.code_hash, code._file_meaning):
            cached.cache_clear()
        return code.code_hash(script)

    original = hash_of('def f(x):\n    """Doubles."""\n    return x * 2\n')
    assert hash_of('def f(x):\n    """Doubles x (a new docstring)."""\n    return x * 2  # a comment\n') == original
    assert hash_of("def f(x):\n\n    return (\n        x * 2\n    )\n") == original  # reformatted, no docstring
    assert hash_of("def f(x):\n    return x * 3\n") != original
    assert hash_of('def f(x):\n    """Doubles."""\n    return x * 2\n\nTHRESHOLD = 1\n') != original
    script.write_text("from selfdistill.mod import f  # the script, commented\n")
    assert hash_of('def f(x):\n    """Doubles."""\n    return x * 2\n') == original
    script.write_text("from selfdistill.mod import f\nprint(f(1))\n")
    assert hash_of('def f(x):\n    """Doubles."""\n    return x * 2\n') != original  # the script's meaning counts
    # A config field's help (the string under it) is text too; its default is meaning.
    section = 'class S:\n    lr: float = 0.1\n    """peak learning rate"""\n    steps: int = 5\n'
    with_help = hash_of(section)
    assert hash_of(section.replace("peak learning rate", "the peak; decays linearly to 0")) == with_help
    assert hash_of(section.replace('    """peak learning rate"""\n', "")) == with_help
    assert hash_of(section.replace("0.1", "0.2")) != with_help


def test_settings_a_job_does_not_read_do_not_re_run_it():
    """Each job imports only the settings modules of the sections it reads: editing the methods'
    settings re-runs no evaluation and no toy pretraining, and no job imports the config check."""
    for script in ("evaluate", "teacher_traces", "pretrain_toy", "prepare_dataset", "gate"):
        found = modules(SCRIPTS / f"{script}.py")
        assert "settings/methods.py" not in found and "settings/workflow.py" not in found, script
    assert "settings/methods.py" in modules(SCRIPTS / "train_rollouts.py")
    assert "settings/generation.py" not in modules(SCRIPTS / "pretrain_toy.py")
    for script in SCRIPTS.glob("*.py"):
        assert not {"config.py", "facts.py", "toy_worlds.py"} & modules(script), script.name
