"""Config sections as frozen dataclasses: each section's class lives beside the code that reads it
(its fields documented there) and is built once per script from the slice the rule passes.
The schema (config/schema.yaml) holds the defaults and `selfdistill.config` the checks across
fields, so a class here has neither: it is the typed shape of a checked, complete slice.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing


@functools.cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _convert(kind, value):
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
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
    """An instance of section class `cls` from a config mapping; unknown or missing keys are errors
    (the schema has filled every default, so a complete slice is expected)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise TypeError(f"{cls.__name__}: unknown key(s) {unknown} (a schema without them? check config/schema.yaml)")
    kwargs = {}
    for name, field in fields.items():
        if name in mapping:
            kwargs[name] = _convert(_hints(cls)[name], mapping[name])
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}: missing key {name!r} (are the schema's defaults filled in?)")
    return cls(**kwargs)


def as_dict(section) -> dict:
    """The section back as plain data (provenance, canonical JSON)."""

    def plain(value):
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {k: plain(v) for k, v in dataclasses.asdict(section).items()}


def hyperparameters(cls, config: dict, method: str, coverage=None):
    """A method's section of a (checked) config as its typed hyperparameters at `coverage`: without
    the keys that are grid axes or evaluation settings (what the training rules pass, too)."""
    from selfdistill import grid

    return build(cls, grid.hyperparameters(config, method, coverage))
