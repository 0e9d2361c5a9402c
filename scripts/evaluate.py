from pathlib import Path

from selfdistill.backends import Sampling, make_backend
from selfdistill.evaluation import eval_problems
from selfdistill.generation import finish_shards, generate_table, shards
from selfdistill.grid import parse_variant
from selfdistill.io import read_table, write_table
from selfdistill.jobs import config_slice, job_key, model_location, param, section, start_job
from selfdistill.prompts import student_user_turn
from selfdistill.settings.generation import EvalSetConfig, GenerationConfig
from selfdistill.settings.grading import GradingConfig
from selfdistill.settings.models import ModelConfig

start_job(snakemake)
wc = snakemake.wildcards
model, eval_set = section(snakemake, "model", ModelConfig), section(snakemake, "eval_set", EvalSetConfig)
generation = section(snakemake, "generation", GenerationConfig)

problems = eval_problems(
    read_table(snakemake.input.problems), eval_set.split, eval_set.n_problems, f"eval_sets.{wc.eval_set}.split"
)
step = parse_variant(wc.variant)["step"]  # a checkpoint of a rollout run, or its final weights
trained = Path(snakemake.input.trained) / f"step{step}" if step else snakemake.input.get("trained")
backend = make_backend(model, model_location(snakemake), adapter_path=trained, batch_size=generation.batch_size)
turns = [student_user_turn(param(snakemake, "student_prompt"), p) for p in problems["problem"]]
sampling = Sampling.of(eval_set, eval_set.seed, model, f"eval_sets.{wc.eval_set}")
table = generate_table(
    backend,
    problems,
    turns,
    sampling,
    section(snakemake, "grading", GradingConfig),
    model.chat_kwargs,
    desc=f"eval {wc.variant} {wc.eval_set}",
    **shards(snakemake.output[0], generation, job_key(snakemake)),
)
write_table(table, snakemake.output[0], {**config_slice(snakemake), "sampling": vars(sampling)}, seed=eval_set.seed)
finish_shards(snakemake.output[0])
