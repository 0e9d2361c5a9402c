"""Training curves of the organism's full design (issue 22): is the default's 12-step verdict what
longer training gives, or does the effect keep moving?

    snakemake --cores 2 --configfile config/organism.yaml config/organism_one_seed.yaml
    python bench/organism_curves.py --machine "..."    # writes bench/results/organism_curves.{json,md}

Reads results/summary/curves.parquet (every rollout run's checkpoints and final weights scored on its
curve eval set, the same problems and sampling as its base, step 0) and each model's gate.json (its
world), and tabulates per model and arm the change from the base at every checkpoint step: accuracy
and epistemic words per response, the mean over the arm's runs (training seeds, coverages).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from selfdistill.findings import mechanism_points  # noqa: E402
from selfdistill.io import write_json  # noqa: E402

ARM = ["method", "richness", "ablation"]


def curve_table(curves: pd.DataFrame, worlds: dict, eval_set: str) -> pd.DataFrame:
    """One row per (model, arm, step > 0): the mean change from the base over the arm's runs, and
    their number."""
    points = mechanism_points(curves, eval_set)
    table = (
        points.groupby(["model", *ARM, "step"])
        .agg(d_accuracy=("d_accuracy", "mean"), d_epistemic=("d_epistemic", "mean"), runs=("run", "size"))
        .reset_index()
    )
    table.insert(1, "world", table["model"].map(worlds))
    return table


def render(report: dict) -> str:
    table = pd.DataFrame(report["rows"])
    lines = [
        f"# Training curves: change from the base on `{report['eval_set']}` per checkpoint step",
        "",
        f"{report['measured']}; config: {report['config']}. Each cell: accuracy change / epistemic words "
        "per response change, the mean over the arm's runs.",
        "",
    ]
    steps = sorted(table["step"].unique())
    lines += ["| model | world | arm | " + " | ".join(f"step {s}" for s in steps) + " |"]
    lines += ["|---" * (3 + len(steps)) + "|"]
    for (model, world, *arm), rows in table.groupby(["model", "world", *ARM], sort=True):
        cells = rows.set_index("step")
        shown = [
            f"{cells.at[s, 'd_accuracy']:+.3f} / {cells.at[s, 'd_epistemic']:+.2f}" if s in cells.index else ""
            for s in steps
        ]
        lines.append(f"| {model} | {world} | {'/'.join(arm)} | " + " | ".join(shown) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--eval-set", default="ood")
    parser.add_argument("--config", default="config/organism.yaml config/organism_one_seed.yaml")
    parser.add_argument("--machine", default="", help="where and how the run was measured (for the record)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "organism_curves.json")
    args = parser.parse_args()
    curves_path = args.results / "summary" / "curves.parquet"
    if not curves_path.is_file():
        sys.exit(f"no {curves_path}: run the design first (snakemake --configfile {args.config})")
    worlds = {p.parent.name: json.loads(p.read_text())["world"] for p in args.results.glob("*/gate.json")}
    table = curve_table(pd.read_parquet(curves_path), worlds, args.eval_set)
    report = {
        "measured": args.machine or f"measured {datetime.date.today()}",
        "config": args.config,
        "eval_set": args.eval_set,
        "rows": table.to_dict("records"),
    }
    write_json(report, args.out)
    markdown = render(report)
    args.out.with_suffix(".md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
