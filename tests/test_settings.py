"""The settings' single source: schema, defaults, help and the reference page come from the
dataclasses in selfdistill/settings, and a setting is one field."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import pytest

from selfdistill.config import ConfigError, check_config, load_config
from selfdistill.settings import workflow
from selfdistill.settings.core import Constraint, Partial, PositiveInt, build, object_schema, optional

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, kw_only=True)
class Inner:
    """`inner`: a nested section."""

    k: int = 3
    """a nested setting"""


@dataclass(frozen=True, kw_only=True)
class Example:
    """`example`: every kind of field."""

    steps: PositiveInt
    """optimizer steps"""
    lr: float = 0.1
    """the peak"""
    mode: Literal["a", "b"] = "a"
    rate: Annotated[float, Constraint(exclusiveMinimum=1)] | None = None
    path: str | None = optional()
    names: tuple[str, ...] = ("x",)
    inner: Inner = field(default_factory=Inner)
    override: Annotated[dict, Partial(Inner)] = field(default_factory=dict)


def test_a_section_s_schema_comes_from_its_fields():
    """Against a schema written by hand: type, constraint, default and help of each field."""
    inner = {"type": "object", "additionalProperties": False, "description": "`inner`: a nested section."}
    assert object_schema(Example) == {
        "type": "object",
        "additionalProperties": False,
        "description": "`example`: every kind of field.",
        "required": ["steps"],
        "properties": {
            "steps": {"type": "integer", "minimum": 1, "description": "optimizer steps"},
            "lr": {"type": "number", "default": 0.1, "description": "the peak"},
            "mode": {"enum": ["a", "b"], "default": "a"},
            "rate": {"type": ["number", "null"], "exclusiveMinimum": 1, "default": None},
            "path": {"type": "string"},  # optional: no default, never null
            "names": {"type": "array", "items": {"type": "string"}, "default": ["x"]},
            "inner": {
                **inner,
                "properties": {"k": {"type": "integer", "default": 3, "description": "a nested setting"}},
                "default": {},  # a section's default: its own defaults fill it
            },
            "override": {  # an override: nothing required, no defaults
                **inner,
                "properties": {"k": {"type": "integer", "description": "a nested setting"}},
                "default": {},
            },
        },
    }


def test_a_section_is_built_from_a_slice_with_its_defaults():
    built = build(Example, {"steps": 2, "lr": 1, "names": ["y", "z"], "inner": {}})
    assert built == Example(steps=2, lr=1.0, names=("y", "z"), inner=Inner(k=3))
    assert isinstance(built.lr, float)
    with pytest.raises(TypeError, match=r"unknown key\(s\) \['stpes'\]"):
        build(Example, {"stpes": 2})
    with pytest.raises(TypeError, match="steps"):
        build(Example, {})


def _properties(node: dict, path: str = ""):
    for name, sub in node.get("properties", {}).items():
        yield f"{path}{name}", sub
        yield from _properties(sub, f"{path}{name}.")
        if isinstance(sub.get("additionalProperties"), dict):
            yield from _properties(sub["additionalProperties"], f"{path}{name}.<name>.")


def test_every_setting_has_help():
    undocumented = [path for path, node in _properties(workflow.schema()) if not node.get("description")]
    assert undocumented == []


def test_a_nullable_setting_defaults_to_null():
    """A null in an overlay deletes the key and its default applies: for a setting that can be
    null, that must be null, or `key: null` would mean something else than written. (In a method's
    `by_coverage` override, null deletes the override: the section's own value applies.)"""
    for path, node in _properties(workflow.schema()):
        if ".by_coverage." in path:
            continue
        nullable = None in node.get("enum", ()) or "null" in (
            node.get("type") if isinstance(node.get("type"), list) else ()
        )
        if nullable:
            assert node.get("default", "missing") is None, path


def test_the_grid_keys_of_a_method_section_are_what_the_rules_leave_out():
    from selfdistill.grid import NOT_HYPERPARAMETERS
    from selfdistill.settings.methods import CurveEvalSet, PerCoverage, TeacherAxes

    keys = [f.name for cls in (TeacherAxes, CurveEvalSet, PerCoverage) for f in dataclasses.fields(cls)]
    assert tuple(keys) == NOT_HYPERPARAMETERS


def test_every_registered_method_has_its_settings_and_section():
    from selfdistill.grid import METHODS
    from selfdistill.settings.methods import settings_class

    schema = workflow.schema()
    assert schema["properties"]["methods"]["items"]["enum"] == list(METHODS)
    for method, spec in METHODS.items():
        assert dataclasses.is_dataclass(settings_class(method))
        section = schema["properties"][method]["properties"]
        assert ("ablations" in section) == spec.teacher and ("eval_set" in section) == spec.rollouts


def test_the_reference_page_is_generated_from_the_declarations():
    out = subprocess.run([sys.executable, "-m", "selfdistill.settings.reference"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == (REPO / "docs/configuration-reference.md").read_text(), (
        "docs/configuration-reference.md is stale: python -m selfdistill.settings.reference > "
        "docs/configuration-reference.md"
    )


def test_adding_a_setting_is_one_field(monkeypatch):
    """A new field with a default and help is in the schema, filled in, documented and built: no
    other file changes (configs that do not set it keep their meaning)."""
    from selfdistill.settings import core, methods

    @dataclass(frozen=True, kw_only=True)
    class GRPOWithDecay(methods.GRPOConfig):
        weight_decay: float = 0.0
        """AdamW weight decay"""

    monkeypatch.setattr(methods, "GRPOConfig", GRPOWithDecay)
    for cached in (workflow._schema, core._object_schema):
        cached.cache_clear()
    try:
        cfg = load_config()
        assert cfg["grpo"]["weight_decay"] == 0.0
        assert (
            workflow.schema()["properties"]["grpo"]["properties"]["weight_decay"]["description"] == "AdamW weight decay"
        )
        assert methods.hyperparameters(cfg, "grpo").weight_decay == 0.0
        cfg = load_config()
        cfg["grpo"]["weight_decay"] = "much"
        with pytest.raises(ConfigError, match="grpo.weight_decay = 'much'"):
            check_config(cfg)
    finally:
        monkeypatch.undo()
        for cached in (workflow._schema, core._object_schema):
            cached.cache_clear()


def test_a_section_without_a_docstring_gets_no_made_up_description():
    @dataclass(frozen=True, kw_only=True)
    class Bare:
        x: int = 1
        """a setting"""

    assert "description" not in object_schema(Bare)
