"""docs/configuration-reference.md, written from the declarations (the generated schema):
`python -m selfdistill.settings.reference > docs/configuration-reference.md` (a test keeps it current)."""

from __future__ import annotations

import json

from selfdistill.settings.workflow import schema

HEADER = """# Configuration reference

Generated from the declarations in `selfdistill/settings/` by
`python -m selfdistill.settings.reference > docs/configuration-reference.md`; do not edit by hand.
How configs and overlays work: [configuration.md](configuration.md). A key without a default is
required when its section is present; `<name>` stands for each entry of a catalog.
"""


def _value(value) -> str:
    return f"`{json.dumps(value)}`"


def _bounds(node: dict) -> str:
    low = (">= ", node["minimum"]) if "minimum" in node else ("> ", node.get("exclusiveMinimum"))
    high = ("<= ", node.get("maximum"))
    parts = [f"{sign}{bound}" for sign, bound in (low, high) if bound is not None]
    return " " + ", ".join(parts) if parts else ""


def kind(node: dict) -> str:
    """A schema node's type, in words."""
    if "enum" in node:
        return " \\| ".join(_value(v) for v in node["enum"])
    if "oneOf" in node:
        return " or ".join(kind(n) for n in node["oneOf"])
    if "anyOf" in node:
        return " or ".join(kind(n) for n in node["anyOf"])
    types = node.get("type")
    if isinstance(types, list):
        return " or ".join(kind({**node, "type": t}) for t in types)
    if types == "array":
        return f"list of {kind(node['items'])}"
    if types == "object":
        return "mapping" if "properties" not in node else "section"
    if types == "null":
        return "`null`"
    return f"{types}{_bounds(node)}" if types in ("integer", "number") else str(types)


def _sections(node: dict, path: str):
    """(path, schema) of every section under `node`, depth first, `node` first."""
    yield path, node
    for name, sub in node.get("properties", {}).items():
        if "properties" in sub:
            yield from _sections(sub, f"{path}.{name}" if path else name)
        elif isinstance(sub.get("additionalProperties"), dict) and "properties" in sub["additionalProperties"]:
            yield from _sections(sub["additionalProperties"], f"{path}.{name}.<name>" if path else f"{name}.<name>")


def _row(name: str, node: dict, required: bool) -> str:
    default = "required" if required else (_value(node["default"]) if "default" in node else "")
    text = node.get("description", "").replace("|", "\\|")
    return f"| `{name}` | {kind(node)} | {default} | {text} |"


def markdown() -> str:
    out = [HEADER]
    for path, node in _sections(schema(), ""):
        out.append(f"## `{path}`\n" if path else "## The top level\n")
        if node.get("description"):
            out.append(node["description"] + "\n")
        out += ["| key | type | default | what it is |", "|---|---|---|---|"]
        required = set(node.get("required", ()))
        out += [_row(name, sub, name in required) for name, sub in node["properties"].items()]
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown(), end="")
