"""The config: the embedded default (config/config.yaml) with overlays on top, checked before any job.

An overlay is a YAML file of only what differs: its mappings merge into the config key by key, its
lists and scalars replace, and `null` deletes a key (a catalog entry such as a model, an optional
section such as `organism`, or a setting, whose default then applies). Snakemake merges
`--configfile` files into the embedded default this way; `compose` does the same for scripts, tests
and benchmarks, so both see one config.

`check_config` then deletes the nulled keys, checks the config against the schema generated from
the declarations in selfdistill.settings, fills in every default, and runs each section's
cross-field checks and the checks against the models' and datasets' files (selfdistill.facts): one
message per problem, naming the file, the key, the value and the fix.

`python -m selfdistill.config [OVERLAY ...]` checks the default with the overlays on top (Snakemake
reports an unreadable --configfile without its line; this names it).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import jsonschema
import yaml

from selfdistill import facts
from selfdistill.settings import workflow

DEFAULT = Path(__file__).resolve().parents[1] / "config" / "config.yaml"


class ConfigError(ValueError):
    pass


def load_yaml(path) -> dict:
    """A config file, or a ConfigError naming the file and the line that YAML cannot read."""
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        raise ConfigError(
            f"{where}: not valid YAML ({getattr(error, 'problem', error)}); fix the file there"
        ) from error
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: a config file holds keys at the top level (found {type(loaded).__name__})")
    return loaded


def merge(config: dict, overlay: dict) -> dict:
    """`overlay` merged into `config` in place, as Snakemake merges config files: mappings key by
    key, anything else replaced (a null too; check_config then deletes the key)."""
    for key, value in overlay.items():
        if isinstance(value, dict):
            config[key] = merge(config[key] if isinstance(config.get(key), dict) else {}, value)
        else:
            config[key] = copy.deepcopy(value)
    return config


def compose(*overlays) -> dict:
    """The embedded default with the overlay files on top, in order (not yet checked)."""
    config = load_yaml(DEFAULT)
    for overlay in overlays:
        merge(config, load_yaml(overlay))
    return config


def subschema(schema: dict, path: tuple) -> dict:
    for key in path:
        if key in schema.get("properties", {}):
            schema = schema["properties"][key]
        elif isinstance(schema.get("additionalProperties"), dict):
            schema = schema["additionalProperties"]
        else:
            return {}
    return schema


def delete_nulled(config: dict, schema: dict, config_files=(), path: tuple = ()) -> list[str]:
    """Delete every key set to null, in place; errors for a null that reads as a choice named
    "null" (the toy world): YAML's bare null deletes, the world must be written "null"."""
    errors = []
    for key in list(config):
        here = (*path, key)
        if config[key] is None:
            del config[key]
            if "null" in subschema(schema, here).get("enum", ()):
                name = ".".join(map(str, here))
                errors.append(
                    f"{_where(here, config_files)}: {name} = null deletes the key; to choose the null world "
                    f'write {key}: "null" (in quotes)'
                )
        elif isinstance(config[key], dict):
            errors += delete_nulled(config[key], schema, config_files, here)
    return errors


# Where `snakemake --config key=value` values come from, as a config source: (this name, their mapping).
COMMAND_LINE = "--config (its list items are read as text: set lists in an overlay file)"


def _where(path: tuple, config_files) -> str:
    """The last config source that sets this key path (later ones override earlier ones): a file, or a
    (name, mapping) pair such as the command line's --config."""
    found, last_file = None, None
    for source in config_files or ():
        if isinstance(source, tuple):
            name, node = source
        else:
            name = last_file = source
            node = yaml.safe_load(Path(source).read_text()) or {}
        for key in path:
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and isinstance(key, int) and key < len(node):
                node = node[key]
            else:
                break
        else:
            found = name
    found = found or last_file  # a default the sources leave unset: name the last file
    return str(found) if found else "the merged config"


def _describe(error: jsonschema.ValidationError, config_files) -> str:
    path = tuple(error.absolute_path)
    key = ".".join(map(str, path)) or "(top level)"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        return (
            f"{_where(path, config_files)}: unknown key(s) {', '.join(map(repr, unknown))} under {key}; "
            f"remove or rename them (allowed: {', '.join(allowed)})"
        )
    if error.validator == "required":
        missing = error.message.split(" is a required")[0]
        why = f" ({error.schema['description']})" if "description" in error.schema else ""
        return f"{_where(path, config_files)}: {key} is missing {missing}{why}; add it"
    if error.validator == "enum":
        return (
            f"{_where(path, config_files)}: {key} = {error.instance!r} is not allowed; "
            f"use one of {', '.join(map(repr, error.validator_value))}"
        )
    if error.validator == "minItems" and error.validator_value == 1:
        return f"{_where(path, config_files)}: {key} is empty; list at least one value"
    described = isinstance(error.schema, dict) and "description" in error.schema
    expected = f" (expected: {error.schema['description']})" if described else ""
    return f"{_where(path, config_files)}: {key} = {error.instance!r}: {error.message}{expected}; fix this value"


def schema_errors(config: dict, schema: dict, config_files=()) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [_describe(e, config_files) for e in sorted(validator.iter_errors(config), key=lambda e: list(e.path))]


def _filling_validator():
    """Draft 2020-12 validation that also writes each property's schema `default` where it is unset."""
    base = jsonschema.Draft202012Validator

    def properties(validator, props, instance, schema):
        if isinstance(instance, dict):
            for name, sub in props.items():
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from base.VALIDATORS["properties"](validator, props, instance, schema)

    return jsonschema.validators.extend(base, {"properties": properties})


def with_defaults(config: dict, schema: dict | None = None) -> dict:
    """Fill the declared defaults into `config` in place (and return it): after this, code reads
    every key that has a default directly, with no fallback of its own."""
    for _ in _filling_validator()(schema or workflow.schema()).iter_errors(config):
        pass
    return config


def check_config(config: dict, config_files=(DEFAULT,)) -> dict:
    """Nulled keys deleted, then schema errors; then, with the defaults filled in (in place), the
    checks across fields. Returns the config; raises ConfigError listing every problem found.
    `config_files`: the files it was composed of, in order, and (name, mapping) pairs for other sources
    (named in the messages)."""
    schema = workflow.schema()
    errors = delete_nulled(config, schema, config_files)
    errors += schema_errors(config, schema, config_files)
    if not errors:
        with_defaults(config, schema)
        workflow.coverage_keys_as_text(config)

        def error(key: str, value, problem: str, fix: str):
            path = tuple(int(p) if p.isdigit() else p for p in key.split("."))
            errors.append(f"{_where(path, config_files)}: {key} = {value!r} {problem}; {fix}")

        workflow.cross_field_errors(config, error)
        facts.check(config, error)
        if facts.offline():
            errors += facts.offline_errors(config)
    if errors:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(errors))
    return config


def load_config(*overlays) -> dict:
    """The embedded default with `overlays` on top, checked, defaults filled in (scripts, tests, benchmarks)."""
    return check_config(compose(*overlays), [str(DEFAULT), *map(str, overlays)])


if __name__ == "__main__":
    overlays = sys.argv[1:]
    try:
        load_config(*overlays)
    except ConfigError as error:
        sys.exit(str(error))
    print(" + ".join(["config/config.yaml", *overlays]) + ": valid")
