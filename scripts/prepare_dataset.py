from selfdistill.data.loaders import load_problems
from selfdistill.io import write_table
from selfdistill.jobs import config_slice, section, start_job
from selfdistill.settings.data import DatasetConfig

start_job(snakemake)
problems = load_problems(section(snakemake, "spec", DatasetConfig), snakemake.wildcards.dataset)
write_table(problems, snakemake.output[0], config_slice(snakemake))
