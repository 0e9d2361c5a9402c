import pandas as pd

from selfdistill import plots
from selfdistill.grid import parse_path
from selfdistill.io import read_table
from selfdistill.jobs import param, start_job
from selfdistill.summary import train_size

start_job(snakemake)
cells = read_table(snakemake.input.cells)
full = train_size(read_table(snakemake.input.train_problems))
tables = [read_table(p).assign(**parse_path("train", p, full)) for p in snakemake.input.train_logs]
no_logs = pd.DataFrame(columns=["model", *plots.CELL, "coverage", "seed", "step"])
logs = pd.concat(tables, ignore_index=True) if tables else no_logs
curves = read_table(snakemake.input.curves)
worlds, eval_set = param(snakemake, "worlds"), param(snakemake, "eval_set")
organism = param(snakemake, "organism") or {}
draw = {  # the grid decides which figures the rule asks for (rules/report.smk)
    "accuracy_by_richness": lambda p: plots.plot_metric_by_arm(cells, "accuracy", p, worlds),
    "length_by_richness": lambda p: plots.plot_metric_by_arm(cells, "mean_tokens", p, worlds),
    "epistemic_by_richness": lambda p: plots.plot_metric_by_arm(cells, "epistemic_count", p, worlds),
    "train_loss": lambda p: plots.plot_train_loss(logs, p, worlds),
    "training_curves": lambda p: plots.plot_training_curves(logs, curves, p, worlds),
    "factorial_ood_vs_epistemic": lambda p: plots.plot_factorial(cells, p, eval_set, worlds),
    "organism": lambda p: plots.plot_organism(
        read_table(snakemake.input.organism), cells, p, organism.get("ood", "ood"), organism.get("ood_on", "ood")
    ),
}
for path in snakemake.output:
    draw[path.rsplit("/", 1)[1].removesuffix(".png")](path)
