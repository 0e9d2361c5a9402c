from selfdistill.backends import Sampling, make_backend
from selfdistill.generation import finish_shards, shards
from selfdistill.io import read_table, write_table
from selfdistill.jobs import config_slice, job_key, model_location, section, start_job
from selfdistill.settings.generation import GenerationConfig, TeacherConfig
from selfdistill.settings.grading import GradingConfig
from selfdistill.settings.models import ModelConfig
from selfdistill.settings.prompts import Prompts
from selfdistill.teacher import demonstrations, teacher_table

start_job(snakemake)
wc, seed = snakemake.wildcards, int(snakemake.wildcards.seed)
model, teacher = section(snakemake, "model", ModelConfig), section(snakemake, "teacher", TeacherConfig)
generation = section(snakemake, "generation", GenerationConfig)

demos = demonstrations(read_table(snakemake.input.demos)) if wc.richness == "regen" else None
backend = make_backend(model, model_location(snakemake), batch_size=generation.batch_size)
sampling = Sampling.of(teacher, seed, model, "teacher")
table = teacher_table(
    backend,
    read_table(snakemake.input.subset),
    wc.richness,
    section(snakemake, "prompts", Prompts),
    sampling,
    section(snakemake, "grading", GradingConfig),
    keep=teacher.keep,
    chat_kwargs=model.chat_kwargs,
    demos=demos,
    **shards(snakemake.output[0], generation, job_key(snakemake)),
)
write_table(table, snakemake.output[0], {**config_slice(snakemake), "sampling": vars(sampling)}, seed=seed)
finish_shards(snakemake.output[0])
