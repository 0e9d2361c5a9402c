"""The organism's verdict over pretrained draws, the unit of replication (issue 22).

    snakemake --cores 2 --configfile config/draws.yaml    # first: the draws' run
    python bench/organism_draws.py --machine "..."        # writes bench/results/organism_draws.{json,md}

Reads that run's results/summary/organism.parquet, each model's gate.json and the per-sample OOD
evaluations, and reports per pretrained draw (model, world, pretraining seed): the gate's numbers, the
solution arm's effects (OOD, OOD with checking forced on, recovery = forced-on effect minus free
effect, in domain, epistemic words), the control arm's OOD effect, a verdict, and the decomposition
of the OOD change into a change of the checking rate and changes of accuracy with and without a
check. Across draws: the fraction of draws with each verdict (Clopper-Pearson 95% interval) and the
between-world difference of the OOD effect tested with draws (seed pairs) as units.

The verdict of a draw and the decomposition are selfdistill.draws's (its docstring says how); the
workflow's findings page carries the same per draw (results/summary/draws.parquet); this script adds
the gate's numbers and writes them down as a bench result.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from selfdistill.config import load_config  # noqa: E402
from selfdistill.draws import (  # noqa: E402
    ARM,
    CONTROL,
    PRESERVE,
    TERMS,
    VERDICTS,
    between_worlds,
    checked_samples,
    classify,
    decompose_strata,
    verdict_fractions,
)
from selfdistill.organism import MARGIN, sum_lengths  # noqa: E402
from selfdistill.stats import select  # noqa: E402
from selfdistill.toy_worlds import pretrained_draws  # noqa: E402

QUANTITIES = ("ood", "ood_on", "ood_off", "recovery", "in_domain", "epistemic")


# ---- reading a run ---------------------------------------------------------------------------


def _samples(path: Path) -> pd.DataFrame:
    return checked_samples(pd.read_parquet(path, columns=["problem_id", "response", "correct"]))


def _arm_samples(results: Path, model: str, arm: dict, eval_set: str) -> pd.DataFrame:
    runs = results / model / "eval" / arm["method"] / arm["richness"] / arm["ablation"]
    paths = sorted(runs.glob(f"*/{eval_set}.parquet"))  # one per coverage subset and training seed
    return pd.concat([_samples(p) for p in paths], ignore_index=True) if paths else pd.DataFrame()


def _effect(table: pd.DataFrame, model: str, arm: dict, quantity: str, optional: bool = False) -> dict | None:
    rows = table[
        (table["model"] == model)
        & (table["stratum"] == "all")
        & (table["quantity"] == quantity)
        & (table["richness"] == arm["richness"])
        & (table["method"] == arm["method"])
        & (table["ablation"] == arm["ablation"])
    ]
    if rows.empty and optional:
        return None
    if len(rows) != 1:
        raise ValueError(f"organism.parquet: {len(rows)} rows for {model} {arm} {quantity}, expected 1")
    r = rows.iloc[0]
    keys = ("effect", "ci_low", "ci_high", "p_value", "seed_effects", "n_seeds")
    return {k: (r[k].item() if hasattr(r[k], "item") else r[k]) for k in keys}


def between_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The organism table's guess_check - null rows of the solution arm: one per seed pair (not the
    preserve arm's or the control's, which share the richness)."""
    between = select(table, world="guess_check - null", stratum="all", **ARM)
    if between["model"].duplicated().any():
        raise ValueError("organism.parquet: two guess_check - null rows of one pair for the arm")
    return between


def draws(results: Path, configs: list[str]) -> tuple[list[dict], list[dict]]:
    """One row per gated toy model (a pretrained draw), and one per (guess_check, null) seed pair."""
    split = {m: d["micro_batch_size"] for m, d in pretrained_draws(load_config(*configs)).items()}
    table = pd.read_parquet(results / "summary" / "organism.parquet")
    strata = sum_lengths(pd.read_parquet(results / "data" / "toy.parquet"))
    rows = []
    for gate_path in sorted(results.glob("*/gate.json")):
        model = gate_path.parent.name
        gate = json.loads(gate_path.read_text())
        gate = {k: v for k, v in gate.items() if k != "provenance"}
        effects = {q: _effect(table, model, ARM, q, optional=q == "ood_off") for q in QUANTITIES}
        preserve = {q: _effect(table, model, PRESERVE, q, optional=True) for q in ("ood", "ood_on", "epistemic")}
        base = _samples(results / model / "eval" / "base" / "ood.parquet")
        arm = _arm_samples(results, model, ARM, "ood")
        rows.append(
            {
                "model": model,
                "world": gate["world"],
                "pretraining_seed": gate.get("seed"),
                "micro_batch_size": split.get(model),
                "gate": gate,
                "effects": effects,
                "control_ood": _effect(table, model, CONTROL, "ood"),
                "preserve": preserve if preserve["ood"] else None,
                "verdict": classify(effects["ood"], effects["ood_on"], effects["recovery"]),
                "decomposition": decompose_strata(base, arm, strata),
            }
        )
    between = between_rows(table)
    pairs = [
        {
            "pair": r.model,
            "pretraining_seed": next(d["pretraining_seed"] for d in rows if d["model"] == r.model.split(" - ")[0]),
            **{k: float(getattr(r, k)) for k in ("effect", "ci_low", "ci_high", "p_value")},
        }
        for r in between.itertuples()
    ]
    return rows, pairs


# ---- the report ------------------------------------------------------------------------------


def _f(x, digits=3, sign=True) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "n/a"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _ci(e: dict) -> str:
    return f"{_f(e['effect'])} [{_f(e['ci_low'])}, {_f(e['ci_high'])}]"


def render(report: dict) -> str:
    lines = [
        "# The organism's verdict over pretrained draws",
        "",
        f"{report['measured']}. Config `{report['config']}`; arm on-policy/solution/standard against each",
        "draw's base model (95% CIs over problems of the training-seed mean, as in organism.parquet);",
        f"no-effect margin ±{MARGIN:g}. Recovery = forced-on effect minus free effect.",
        "",
        "| model | world | seed / split | gate OOD off / on (value) | in-domain value | Wait selectivity | OOD | "
        "forced on | forced off | recovery | in domain | epistemic words | control (none) OOD | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in report["draws"]:
        g, e = d["gate"], d["effects"]
        lines.append(
            f"| {d['model']} | {d['world']} | {d['pretraining_seed']} / {d['micro_batch_size']} | "
            f"{g['ood_off']:.3f} / {g['ood_on']:.3f} "
            f"({g['ood_value']:+.3f}) | {g['in_domain_value']:+.3f} | {_f(g.get('wait_selectivity'), 2)} | "
            f"{_ci(e['ood'])} | {_ci(e['ood_on'])} | {_ci(e['ood_off']) if e['ood_off'] else 'n/a'} | "
            f"{_ci(e['recovery'])} | {_ci(e['in_domain'])} | "
            f"{_f(e['epistemic']['effect'], 2)} | {_f(d['control_ood']['effect'])} | **{d['verdict']}** |"
        )
    lines += [
        "",
        "**Decomposition of the OOD change** (free OOD samples, per sum-length stratum, weighted by the",
        "stratum's share): (a) (r1 - r0)(a_c0 - a_n0), (b) r1 (a_c1 - a_c0), (c) (1 - r1)(a_n1 - a_n0).",
        "",
        "| model | world | checking rate base -> arm | acc. when checking, base -> arm | "
        "(a) rate | (b) when checking | (c) when not | sum | OOD change | share (a) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in report["draws"]:
        x = d["decomposition"]
        strata = sorted(x["strata"].items())
        checking = " / ".join(f"{s['acc_check_base']:.2f} -> {s['acc_check_arm']:.2f} ({label})" for label, s in strata)
        lines.append(
            f"| {d['model']} | {d['world']} | {x['rate_base']:.3f} -> {x['rate_arm']:.3f} | {checking} | "
            f"{_f(x['rate_term'])} | {_f(x['check_accuracy_term'])} | {_f(x['nocheck_accuracy_term'])} | "
            f"{_f(sum(x[t] for t in TERMS))} | {_f(x['total'])} | {_f(x['rate_share'], 2, False)} |"
        )
    preserved = [d for d in report["draws"] if d.get("preserve")]
    if preserved:
        lines += [
            "",
            "**Claim (d), the uncertainty ablation** (on-policy/solution/preserve against the base model: the",
            "student's own distribution kept at its epistemic words; prediction written first: epistemic words",
            "and OOD accuracy no lower, beside the standard arm's):",
            "",
            "| model | world | OOD, preserve | OOD, standard | forced on, preserve | epistemic words, preserve | "
            "epistemic words, standard |",
            "|---|---|---|---|---|---|---|",
        ]
        for d in preserved:
            x, e = d["preserve"], d["effects"]
            lines.append(
                f"| {d['model']} | {d['world']} | {_ci(x['ood'])} | {_ci(e['ood'])} | {_ci(x['ood_on'])} | "
                f"{_f(x['epistemic']['effect'], 2)} | {_f(e['epistemic']['effect'], 2)} |"
            )
    lines += ["", "**Between worlds, per seed pair** (guess_check OOD effect minus null's, paired by problem):", ""]
    lines += ["| pair | seed | difference [95% CI] | p (sign-flip over problems) |", "|---|---|---|---|"]
    lines += [f"| {p['pair']} | {p['pretraining_seed']} | {_ci(p)} | {p['p_value']:.3g} |" for p in report["pairs"]]
    b = report["between_worlds"]
    lines += [
        "",
        f"**Across draws** ({b['n_pairs']} seed pairs as units): mean difference {_ci(b)}, exact sign-flip "
        f"p {b['p_value']:.3g} (smallest attainable {b['min_p']:.3g}), one-sample t p {b['t_p_value']:.3g} "
        f"(one-sided, lower: {b['t_p_value_one_sided_lower']:.3g}).",
        "",
        "**Verdicts across draws** (Clopper-Pearson 95% intervals):",
        "",
        "| world | " + " | ".join(VERDICTS) + " |",
        "|---" * (len(VERDICTS) + 1) + "|",
    ]
    for world, fractions in report["verdict_fractions"].items():
        cells = [f"{f['k']}/{f['n']} [{f['ci_low']:.2f}, {f['ci_high']:.2f}]" for f in fractions.values()]
        lines.append(f"| {world} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--config", nargs="+", default=["config/draws.yaml"], help="the overlays the run used")
    parser.add_argument("--machine", default="", help="where and how the run was measured (for the record)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "organism_draws.json")
    args = parser.parse_args()
    rows, pairs = draws(args.results, args.config)
    if not rows:
        sys.exit(f"no */gate.json under {args.results}: run the draws first (snakemake --configfile {args.config[0]})")
    differences = pd.Series({p["pretraining_seed"]: p["effect"] for p in pairs})
    report = {
        "measured": args.machine or f"measured {datetime.date.today()}",
        "config": " ".join(args.config),
        "draws": rows,
        "pairs": pairs,
        "between_worlds": between_worlds(differences),
        "verdict_fractions": {
            world: verdict_fractions([d["verdict"] for d in rows if d["world"] == world])
            for world in dict.fromkeys(d["world"] for d in rows)
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1, default=float) + "\n")
    tmp.replace(args.out)
    markdown = render(report)
    args.out.with_suffix(".md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
