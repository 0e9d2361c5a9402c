from selfdistill.backends import Sampling, make_backend
from selfdistill.generation import finish_shards, shards
from selfdistill.io import read_table, write_table
from selfdistill.jobs import job_key, model_location, param, start_job
from selfdistill.teacher import demonstrations, teacher_table

start_job(snakemake)
wc = snakemake.wildcards
model, teacher, grading = param(snakemake, "model"), param(snakemake, "teacher"), param(snakemake, "grading")
templates, seed = param(snakemake, "prompts"), int(wc.seed)

demos = demonstrations(read_table(snakemake.input.demos)) if wc.richness == "regen" else None
backend = make_backend(model, model_location(snakemake), batch_size=param(snakemake, "generation")["batch_size"])
table = teacher_table(
    backend,
    read_table(snakemake.input.subset),
    wc.richness,
    templates,
    Sampling.from_config(teacher, seed, model),
    grading,
    keep=teacher["keep"],
    chat_kwargs=model.get("chat_kwargs"),
    demos=demos,
    **shards(snakemake.output[0], param(snakemake, "generation"), job_key(snakemake)),
)
config_slice = {"model": model, "teacher": teacher, "prompts": templates, "grading": grading, "wildcards": dict(wc)}
write_table(table, snakemake.output[0], config_slice, seed=seed)
finish_shards(snakemake.output[0])
