from selfdistill.io import read_provenance, read_table, write_table
from selfdistill.jobs import start_job
from selfdistill.summary import summarize

start_job(snakemake)
tables = {path: read_table(path) for path in snakemake.input.evals}
sources = {path: read_provenance(path)["config_hash"] for path in snakemake.input.evals}
write_table(summarize(tables), snakemake.output[0], {"inputs": sources})
