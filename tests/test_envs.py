"""The conda environments (one per job kind) parse and agree with pyproject.toml.

No conda registry is reachable here, so they are not built; this keeps them from drifting."""

import re
from pathlib import Path

import tomllib
import yaml

REPO = Path(__file__).resolve().parents[1]


def requirements(specs):
    """name -> version specifier, from pip requirement strings."""
    out = {}
    for spec in specs:
        name, rest = re.match(r"([A-Za-z0-9_.-]+)(.*)", spec).groups()
        out[name.lower()] = rest.strip()
    return out


def env_pip(name):
    env = yaml.safe_load((REPO / "envs" / name).read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ../" in pip  # the project itself
    return requirements(p for p in pip if not p.startswith("-e"))


def test_envs_match_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core, gpu_extra = requirements(project["dependencies"]), requirements(project["optional-dependencies"]["gpu"])
    cpu = env_pip("cpu.yaml")
    assert cpu.pop("torch") == "==2.13.0"  # the CPU build; pyproject leaves torch to the extras
    assert cpu == {k: v for k, v in core.items() if k != "torch"}
    assert env_pip("gpu.yaml") == {**core, **gpu_extra}  # vLLM picks its CUDA torch


def test_rules_name_existing_envs():
    for rules in (REPO / "rules").glob("*.smk"):
        for env in re.findall(r'"\.\./(envs/[^"]+)"', rules.read_text()):
            assert (REPO / env).exists(), f"{rules.name} names {env}"
