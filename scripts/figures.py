import pandas as pd

from selfdistill import plots
from selfdistill.grid import parse_path
from selfdistill.io import read_table
from selfdistill.jobs import param, start_job
from selfdistill.summary import train_size

start_job(snakemake)
cells = read_table(snakemake.input.cells)
full = train_size(read_table(snakemake.input.train_problems))
figures = {p.rsplit("/", 1)[1].removesuffix(".png"): p for p in snakemake.output}
tables = [read_table(p).assign(**parse_path("train", p, full)) for p in snakemake.input.train_logs]
logs = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["method", "coverage", "seed", "step"])
curves = read_table(snakemake.input.curves)
plots.plot_metric_by_coverage(cells, "accuracy", figures["accuracy_by_richness"])
plots.plot_metric_by_coverage(cells, "mean_tokens", figures["length_by_richness"])
plots.plot_metric_by_coverage(cells, "epistemic_count", figures["epistemic_by_richness"])
plots.plot_train_loss(logs, figures["train_loss"])
plots.plot_training_curves(logs, curves, figures["training_curves"])
plots.plot_factorial(cells, figures["factorial_ood_vs_epistemic"], param(snakemake, "eval_set"))
organism = param(snakemake, "organism") or {}
plots.plot_organism(
    read_table(snakemake.input.organism),
    cells,
    figures["organism"],
    organism.get("ood", "ood"),
    organism.get("ood_on", "ood"),
)
