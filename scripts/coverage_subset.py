from selfdistill.data.coverage import coverage_subset, fixed_subset
from selfdistill.io import read_table, write_table
from selfdistill.jobs import config_slice, param, start_job

start_job(snakemake)
coverage, seed = snakemake.wildcards.coverage, int(snakemake.wildcards.seed)  # coverage: a number or 'full'
problems, batch_size, coverage_file = (
    read_table(snakemake.input.problems),
    param(snakemake, "batch_size"),
    param(snakemake, "coverage_file"),
)
if coverage_file:  # a subset given as its own dataset (the paper's shipped subsets)
    subset = fixed_subset(problems, coverage, batch_size, coverage_file)
else:
    subset = coverage_subset(problems, coverage, seed, batch_size)
write_table(subset, snakemake.output[0], config_slice(snakemake), seed=seed)
