"""Section `organism`: the guess worlds' controls (the gate on each base model, and the eval sets
the results are read from), with the checks that its eval sets differ only in checking."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from selfdistill.settings.core import Constraint, Name

# Each of the organism's eval sets, and how it must sample the epistemic words.
EPISTEMIC = {
    "ood": "free",
    "in_domain": "free",
    "ood_off": "banned",
    "ood_on": "forced",
    "in_domain_off": "banned",
    "in_domain_on": "forced",
}
# Pairs compared for what checking is worth: they must sample the same problems the same way.
PAIRS = (("ood", "ood_on"), ("ood_off", "ood_on"), ("in_domain_off", "in_domain_on"))
SAME = ("dataset", "split", "n_problems", "n_samples", "temperature", "top_p", "top_k", "seed")


@dataclass(frozen=True, kw_only=True)
class OrganismConfig:
    """`organism`: the guess worlds' controls (toy models of a guess world): the gate, checked before any
    distillation (the workflow stops when a world is not what it claims), and the results set beside the
    predictions."""

    ood: Name
    """eval set: OOD, sampled freely"""
    in_domain: Name
    """eval set: held-out in-domain, sampled freely"""
    ood_off: Name
    """eval set: OOD, epistemic banned (checking forced off)"""
    ood_on: Name
    """eval set: the same problems, epistemic forced (checking forced on)"""
    in_domain_off: Name
    """eval set: in-domain, checking forced off"""
    in_domain_on: Name
    """eval set: in-domain, checking forced on"""
    min_ood_value: float = 0.15
    """guess_check: OOD accuracy with checking on minus off, at least"""
    max_in_domain_value: float = 0.05
    """guess_check: the same in domain, at most"""
    min_wait_selectivity: Annotated[float, Constraint(minimum=-1, maximum=1)] = 0.3
    """guess_check: P(Wait | wrong guess) - P(Wait | right guess), at least (-1: not required)"""
    max_null_value: float = 0.05
    """null: |OOD accuracy on - off|, at most"""

    @staticmethod
    def check(config: dict, error) -> None:
        gate, eval_sets = config["organism"], config["eval_sets"]
        for key, epistemic in EPISTEMIC.items():
            eval_set = eval_sets.get(gate[key])
            if eval_set is None:
                error(
                    f"organism.{key}",
                    gate[key],
                    "is not an eval set",
                    f"add it under eval_sets with epistemic: {epistemic}",
                )
            elif eval_set["epistemic"] != epistemic:
                error(
                    f"eval_sets.{gate[key]}.epistemic",
                    eval_set["epistemic"],
                    f"must be {epistemic}: it is organism.{key}",
                    f"set it to {epistemic}",
                )
        for off, on in PAIRS:
            sets = [eval_sets.get(gate[k]) for k in (off, on)]
            if all(sets) and any(sets[0][f] != sets[1][f] for f in SAME):
                error(
                    f"organism.{on}",
                    gate[on],
                    f"samples other problems or otherwise than organism.{off} = {gate[off]}: the comparison is of "
                    "checking on and off, nothing else",
                    f"give both eval sets the same {', '.join(SAME)}",
                )
