from selfdistill.data.coverage import coverage_subset
from selfdistill.io import read_table, write_table
from selfdistill.jobs import config_slice, param, start_job

start_job(snakemake)
coverage, seed = snakemake.wildcards.coverage, int(snakemake.wildcards.seed)  # coverage: a number or 'full'
subset = coverage_subset(read_table(snakemake.input.problems), coverage, seed, param(snakemake, "batch_size"))
write_table(subset, snakemake.output[0], config_slice(snakemake), seed=seed)
