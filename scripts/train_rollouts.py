import shutil
from pathlib import Path

import pandas as pd

from selfdistill import distributed
from selfdistill.backends import make_backend, make_rollout_engine
from selfdistill.distributed import launch_ranks, save_model
from selfdistill.io import read_table, write_table
from selfdistill.jobs import claim_partial, config_slice, job_key, model_location, section, start_job
from selfdistill.models import load_model, load_tokenizer
from selfdistill.settings.grading import GradingConfig
from selfdistill.settings.methods import settings_class
from selfdistill.settings.models import ModelConfig
from selfdistill.settings.prompts import Prompts
from selfdistill.settings.training import EngineConfig, LoraConfig, TrainingConfig
from selfdistill.train.model import trainable_model
from selfdistill.train.objectives import make_objective
from selfdistill.train.progress import Progress
from selfdistill.train.rollouts import train_on_rollouts

start_job(snakemake)
wc, seed = snakemake.wildcards, int(snakemake.wildcards.seed)
model_cfg, training = section(snakemake, "model", ModelConfig), section(snakemake, "training", TrainingConfig)
hp, templates = section(snakemake, "hp", settings_class(wc.rollout_method)), section(snakemake, "prompts", Prompts)
out = Path(snakemake.output.adapter)
# Work in progress (checkpoints, resumable state) lives outside the declared outputs, which
# Snakemake deletes before a re-run; a re-run after a crash resumes from it if it is this job's.
partial = claim_partial(out.parent / "partial", job_key(snakemake))
launch_ranks(training)

location = model_location(snakemake)
tokenizer = load_tokenizer(location)
model = trainable_model(
    load_model(location, dtype=model_cfg.dtype), section(snakemake, "lora", LoraConfig), training, seed
)
engine = section(snakemake, "rollouts", EngineConfig)
teacher_topk = hp.topk if getattr(hp, "teacher_backend", "hf") == "vllm" else None
# Started once for the job, before training changes the weights.
rollouts = make_rollout_engine(
    engine,
    model_cfg,
    model,
    tokenizer,
    location,
    hp.generation_batch_size,
    seed,
    ranks=distributed,
    max_logprobs=teacher_topk,
)
scorer = None
if teacher_topk:
    # The frozen teacher = the initial weights, top-k per position through vLLM: the rollout engine's
    # base weights when it serves the student as a LoRA adapter (the config check allows no other
    # vLLM rollouts with it), else an engine of its own (models.<name>.vllm leaves training the rest).
    scorer = (
        rollouts
        if engine.backend == "vllm"
        else make_backend(model_cfg, location, seed=seed, max_logprobs=teacher_topk)
    )
# Made before training starts: a frozen teacher copies the initial weights.
objective = make_objective(
    wc.rollout_method, model, tokenizer, hp, wc.richness, wc.ablation, templates, model_cfg.chat_kwargs, scorer
)
(partial / "checkpoints").mkdir(exist_ok=True)
progress = Progress(out.parent / "tensorboard")
rows = train_on_rollouts(
    model,
    tokenizer,
    read_table(snakemake.input.subset),
    objective,
    hp,
    templates,
    section(snakemake, "grading", GradingConfig),
    seed,
    rollouts,
    training.loss_chunk,
    engine,
    chat_kwargs=model_cfg.chat_kwargs,
    checkpoint_dir=partial / "checkpoints",
    state_path=partial / "state.pt",
    on_step=progress,
)
progress.close()
writes = save_model(model, out)
rollouts.close()  # after the last collective: a rank's vLLM engine takes the process group down with it
if writes:
    shutil.rmtree(snakemake.output.checkpoints, ignore_errors=True)
    (partial / "checkpoints").rename(snakemake.output.checkpoints)
    shutil.rmtree(partial)
    write_table(pd.DataFrame(rows), snakemake.output.log_table, config_slice(snakemake), seed=seed)
