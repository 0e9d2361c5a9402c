from selfdistill.backends import Sampling, make_backend
from selfdistill.evaluate import eval_problems
from selfdistill.generation import finish_shards, shards
from selfdistill.io import read_table, write_table
from selfdistill.jobs import job_key, model_location, param, start_job
from selfdistill.table1 import select_problems
from selfdistill.teacher import demonstrations, teacher_table

start_job(snakemake)
wc = snakemake.wildcards
model, spec, grading = param(snakemake, "model"), param(snakemake, "table1"), param(snakemake, "grading")
templates = param(snakemake, "prompts")

candidates = eval_problems(read_table(snakemake.input.problems), {**spec, "n_problems": spec["n_candidates"]}, "table1")
if wc.richness == "none":  # the unguided samples: Table 1's first row, and what selects its problems
    problems = candidates
else:
    problems = select_problems(read_table(snakemake.input.candidates), candidates, spec["correct_range"], spec["n_problems"])
demos = demonstrations(read_table(snakemake.input.demos)) if wc.richness == "regen" else None
backend = make_backend(model, model_location(snakemake), batch_size=param(snakemake, "generation")["batch_size"])
sampling = Sampling.from_config(spec["sampling"], spec["sampling"]["seed"], model)
table = teacher_table(backend, problems, wc.richness, templates, sampling, grading, keep="all",
                      chat_kwargs=model.get("chat_kwargs"), demos=demos,
                      **shards(snakemake.output[0], param(snakemake, "generation"), job_key(snakemake)))
config_slice = {"model": model, "table1": spec, "prompts": templates, "grading": grading, "wildcards": dict(wc)}
write_table(table, snakemake.output[0], config_slice, seed=sampling.seed)
finish_shards(snakemake.output[0])
