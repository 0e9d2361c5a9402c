from selfdistill.io import read_provenance, read_table, write_table
from selfdistill.jobs import start_job
from selfdistill.summary import summarize, train_size

start_job(snakemake)
tables = {path: read_table(path) for path in snakemake.input.evals}
sources = {path: read_provenance(path)["config_hash"] for path in snakemake.input.evals}
full = train_size(read_table(snakemake.input.train_problems))
write_table(summarize(tables, full), snakemake.output[0], {"inputs": sources})
