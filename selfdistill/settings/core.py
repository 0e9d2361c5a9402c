"""How a setting is declared, and what is derived from the declarations.

A section is a frozen, keyword-only dataclass. A field's type says what values it takes (`Literal`
for a choice, `tuple[...]` for a list, `dict[K, V]` for a mapping, another section for a nested
one); `Annotated[type, Constraint(...)]` adds JSON-schema keywords (minimum, pattern, ...); the
default, where there is one, is the dataclass default; the help is the string literal under the
field (an attribute docstring, as pydantic's `use_attribute_docstrings` reads them: code hashes
ignore it, so editing help re-runs nothing). A field without a default is required; `optional()`
marks one that may be absent and is then left out (not filled with null).

Derived here: `object_schema` (the JSON schema of a section, defaults included, which the config
check fills in), `build` (a typed section from a checked config slice), `as_dict`.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import functools
import inspect
import textwrap
import types
import typing
from typing import Annotated, Literal

from selfdistill.grid import ABLATIONS, RICHNESS

_NONE = type(None)


class Constraint(dict):
    """JSON-schema keywords that a field's values must meet, e.g. Constraint(minimum=1)."""

    def __init__(self, **keywords):
        super().__init__(keywords)

    def __hash__(self):  # typing hashes Annotated metadata (in unions); the keywords are scalars
        return hash(tuple(sorted(self.items())))


@dataclasses.dataclass(frozen=True)
class Partial:
    """A mapping of some of `section`'s keys (an override): nothing required, no defaults filled."""

    section: type


def optional():
    """A field that may be absent from the config (no default is filled in; the section reads None)."""
    return dataclasses.field(default=None, metadata={"optional": True})


# Constrained types used across sections.
PositiveInt = Annotated[int, Constraint(minimum=1)]
NonNegativeInt = Annotated[int, Constraint(minimum=0)]
Positive = Annotated[float, Constraint(exclusiveMinimum=0)]
NonNegative = Annotated[float, Constraint(minimum=0)]
Probability = Annotated[float, Constraint(minimum=0, maximum=1)]
TopP = Annotated[float, Constraint(exclusiveMinimum=0, maximum=1)]
Name = Annotated[str, Constraint(pattern="^[A-Za-z0-9_.-]+$")]
Richness = Literal[RICHNESS]
Ablation = Literal[ABLATIONS]


def choices(kind, **keywords):
    """A non-empty list of distinct values of `kind`."""
    return Annotated[tuple[kind, ...], Constraint(minItems=1, uniqueItems=True, **keywords)]


# ---- the JSON schema ------------------------------------------------------------------------------


@functools.cache
def attribute_docs(cls) -> dict[str, str]:
    """Each field's help: the string literal under it in the class body (subclasses override)."""
    docs = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for node, after in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = " ".join(inspect.cleandoc(after.value.value).split())
    return docs


def _nullable(schema: dict) -> dict:
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], None]}
    if isinstance(schema.get("type"), str):
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


_SIMPLE = {bool: "boolean", int: "integer", float: "number", str: "string"}


def type_schema(kind, partial: bool = False) -> dict:
    """The JSON schema of a field's type (`partial`: nested sections as overrides, see Partial)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is Annotated:
        base, *extras = args
        for extra in extras:
            if isinstance(extra, Partial):
                return object_schema(extra.section, partial=True)
        schema = type_schema(base, partial)
        for extra in extras:
            schema.update(extra)
        return schema
    if origin in (typing.Union, types.UnionType):
        members = [m for m in args if m is not _NONE]
        one_of = [type_schema(m, partial) for m in members]
        schema = one_of[0] if len(one_of) == 1 else {"oneOf": one_of}
        return _nullable(schema) if _NONE in args else schema
    if origin is Literal:
        return {"enum": list(args)}
    if origin is tuple:
        return {"type": "array", "items": type_schema(args[0], partial)}
    if origin is dict:
        schema = {"type": "object", "additionalProperties": type_schema(args[1], partial)}
        names = {k: v for k, v in type_schema(args[0]).items() if k != "type"}
        return {**schema, "propertyNames": names} if names else schema
    if kind is dict:
        return {"type": "object"}
    if dataclasses.is_dataclass(kind):
        return object_schema(kind, partial)
    return {"type": _SIMPLE[kind]}


def plain(value):
    """A default as config data: tuples as lists, a section as {} (its own defaults fill it)."""
    if dataclasses.is_dataclass(value):
        return {}
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def default_of(field: dataclasses.Field):
    """A field's default, or MISSING."""
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


@functools.cache
def _object_schema(cls, partial: bool) -> dict:
    hints, docs = typing.get_type_hints(cls, include_extras=True), attribute_docs(cls)
    properties, required = {}, []
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        if field.metadata.get("optional") and typing.get_origin(kind) in (typing.Union, types.UnionType):
            (kind,) = [k for k in typing.get_args(kind) if k is not _NONE]  # absent, never null
        schema = type_schema(kind, partial)
        if field.name in docs:
            schema["description"] = docs[field.name]
        default = default_of(field)
        if partial or field.metadata.get("optional"):
            pass
        elif default is dataclasses.MISSING:
            required.append(field.name)
        else:
            schema["default"] = plain(default)
        properties[field.name] = schema
    schema = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        schema["required"] = required
    if cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("):  # not the signature dataclass writes
        schema["description"] = " ".join(inspect.cleandoc(cls.__doc__).split("\n\n")[0].split())
    return schema


def object_schema(cls, partial: bool = False) -> dict:
    """The JSON schema of section `cls` (a fresh copy): its fields, their defaults, which are
    required. `partial`: an override of some keys (nothing required, no default)."""
    return copy.deepcopy(_object_schema(cls, partial))


# ---- typed sections from config slices ------------------------------------------------------------


@functools.cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _convert(kind, value):
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        kind = next(k for k in typing.get_args(kind) if k is not _NONE)
        origin = typing.get_origin(kind)
    if dataclasses.is_dataclass(kind):
        return build(kind, value)
    if origin is tuple:  # lists become tuples: a frozen section is not changed in place
        (item,) = typing.get_args(kind)[:1]
        return tuple(_convert(item, v) for v in value)
    if origin is dict and dataclasses.is_dataclass(typing.get_args(kind)[1]):
        return {k: build(typing.get_args(kind)[1], v) for k, v in value.items()}
    if kind is float and isinstance(value, int):
        return float(value)
    return value


def build(cls, mapping: dict):
    """An instance of section `cls` from a config mapping (a checked slice; an absent key takes
    its default). Unknown keys, and absent keys without a default, are errors."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - names)
    if unknown:
        raise TypeError(f"{cls.__name__}: unknown key(s) {unknown} (not declared in selfdistill.settings)")
    hints = _hints(cls)
    try:
        return cls(**{name: _convert(hints[name], value) for name, value in mapping.items()})
    except TypeError as error:
        raise TypeError(f"{cls.__name__}: {error} (are the defaults filled in?)") from error


def as_dict(section) -> dict:
    """The section back as plain data (provenance, canonical JSON)."""
    return {k: plain(v) if isinstance(v, tuple | list | dict) else v for k, v in dataclasses.asdict(section).items()}
