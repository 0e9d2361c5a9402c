from selfdistill.backends import Sampling, make_backend
from selfdistill.evaluation import eval_problems
from selfdistill.generation import finish_shards, shards
from selfdistill.io import read_table, write_table
from selfdistill.jobs import config_slice, job_key, model_location, section, start_job
from selfdistill.settings.generation import GenerationConfig
from selfdistill.settings.grading import GradingConfig
from selfdistill.settings.models import ModelConfig
from selfdistill.settings.prompts import Prompts
from selfdistill.settings.table1 import Table1Config
from selfdistill.table1 import select_problems
from selfdistill.teacher import demonstrations, teacher_table

start_job(snakemake)
wc = snakemake.wildcards
model, spec = section(snakemake, "model", ModelConfig), section(snakemake, "table1", Table1Config)
generation = section(snakemake, "generation", GenerationConfig)

candidates = eval_problems(read_table(snakemake.input.problems), spec.split, spec.n_candidates, "table1.split")
if wc.richness == "none":  # the unguided samples: Table 1's first row, and what selects its problems
    problems = candidates
else:
    problems = select_problems(read_table(snakemake.input.candidates), candidates, spec.correct_range, spec.n_problems)
demos = demonstrations(read_table(snakemake.input.demos)) if wc.richness == "regen" else None
backend = make_backend(model, model_location(snakemake), batch_size=generation.batch_size)
sampling = Sampling.of(spec.sampling, spec.sampling.seed, model, "table1.sampling")
table = teacher_table(
    backend,
    problems,
    wc.richness,
    section(snakemake, "prompts", Prompts),
    sampling,
    section(snakemake, "grading", GradingConfig),
    keep="all",
    chat_kwargs=model.chat_kwargs,
    demos=demos,
    **shards(snakemake.output[0], generation, job_key(snakemake)),
)
write_table(table, snakemake.output[0], {**config_slice(snakemake), "sampling": vars(sampling)}, seed=sampling.seed)
finish_shards(snakemake.output[0])
