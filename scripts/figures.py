import pandas as pd

from selfdistill.io import read_table
from selfdistill.jobs import start_job
from selfdistill.plots import plot_metric_by_coverage, plot_train_loss
from selfdistill.summary import TRAIN_PATH, parse_path

start_job(snakemake)
metrics = read_table(snakemake.input.metrics)
figures = dict(zip(["accuracy_by_richness", "length_by_richness", "epistemic_by_richness", "train_loss"], snakemake.output))
plot_metric_by_coverage(metrics, "accuracy", figures["accuracy_by_richness"])
plot_metric_by_coverage(metrics, "mean_tokens", figures["length_by_richness"])
plot_metric_by_coverage(metrics, "epistemic_count", figures["epistemic_by_richness"])
logs = pd.concat([read_table(p).assign(**parse_path(TRAIN_PATH, p)) for p in snakemake.input.train_logs])
plot_train_loss(logs, figures["train_loss"])
