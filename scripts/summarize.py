from selfdistill.io import read_provenance, read_table, write_table
from selfdistill.jobs import param, start_job
from selfdistill.summary import curves, summarize, train_size

start_job(snakemake)
finals = {path: read_table(path) for path in snakemake.input.evals}
checkpoints = {path: read_table(path) for path in snakemake.input.curve_evals}
sources = {path: read_provenance(path)["config_hash"] for path in [*finals, *checkpoints]}
full = train_size(read_table(snakemake.input.train_problems))
write_table(summarize(finals, full), snakemake.output.metrics, {"inputs": sources})
write_table(
    curves(finals, checkpoints, param(snakemake, "curves"), full),
    snakemake.output.curves,
    {"inputs": sources, "curves": param(snakemake, "curves")},
)
