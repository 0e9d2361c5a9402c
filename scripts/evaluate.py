from selfdistill.backends import Sampling, make_backend
from selfdistill.evaluate import eval_problems
from selfdistill.generation import finish_shards, generate_table, shards
from selfdistill.io import read_table, write_table
from selfdistill.jobs import job_key, model_location, param, start_job
from selfdistill.prompts import student_user_turn

start_job(snakemake)
wc = snakemake.wildcards
model, eval_set, grading = param(snakemake, "model"), param(snakemake, "eval_set"), param(snakemake, "grading")
template = param(snakemake, "prompts")

problems = eval_problems(read_table(snakemake.input.problems), eval_set, wc.eval_set)
backend = make_backend(
    model,
    model_location(snakemake),
    adapter_path=snakemake.input.get("adapter"),
    batch_size=param(snakemake, "generation")["batch_size"],
)
turns = [student_user_turn({"student": template}, p) for p in problems["problem"]]
table = generate_table(
    backend,
    problems,
    turns,
    Sampling.from_config(eval_set, eval_set["seed"], model),
    grading,
    model.get("chat_kwargs"),
    desc=f"eval {wc.variant} {wc.eval_set}",
    **shards(snakemake.output[0], param(snakemake, "generation"), job_key(snakemake)),
)
config_slice = {"model": model, "eval_set": eval_set, "student_prompt": template, "grading": grading, "wildcards": dict(wc)}
write_table(table, snakemake.output[0], config_slice, seed=eval_set["seed"])
finish_shards(snakemake.output[0])
