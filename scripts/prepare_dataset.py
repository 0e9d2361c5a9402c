from selfdistill.data.loaders import load_problems
from selfdistill.io import write_table
from selfdistill.jobs import param, start_job

start_job(snakemake)
spec = param(snakemake, "spec")
problems = load_problems(spec, snakemake.wildcards.dataset)
write_table(problems, snakemake.output[0], spec)
