import shutil
from pathlib import Path

import pandas as pd

from selfdistill.backends import make_backend
from selfdistill.distributed import launch_ranks, save_model
from selfdistill.grading import GradingConfig
from selfdistill.io import read_table, write_table
from selfdistill.jobs import claim_partial, config_slice, job_key, model_location, section, start_job
from selfdistill.models import ModelConfig, load_model, load_tokenizer
from selfdistill.prompts import Prompts
from selfdistill.train.model import LoraConfig, TrainingConfig, trainable_model
from selfdistill.train.objectives import CONFIGS, make_objective
from selfdistill.train.progress import Progress
from selfdistill.train.rollouts import train_on_rollouts

start_job(snakemake)
wc, seed = snakemake.wildcards, int(snakemake.wildcards.seed)
model_cfg, training = section(snakemake, "model", ModelConfig), section(snakemake, "training", TrainingConfig)
hp, templates = section(snakemake, "hp", CONFIGS[wc.rollout_method]), section(snakemake, "prompts", Prompts)
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
scorer = None
if getattr(hp, "teacher_backend", "hf") == "vllm":
    # The frozen teacher = the initial weights, served by the model's vLLM engine beside the student
    # on the same GPU (models.<name>.vllm.gpu_memory_utilization leaves the rest to training).
    scorer = make_backend(model_cfg, location, seed=seed)
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
    chat_kwargs=model_cfg.chat_kwargs,
    checkpoint_dir=partial / "checkpoints",
    state_path=partial / "state.pt",
    on_step=progress,
)
progress.close()
if save_model(model, out):
    shutil.rmtree(snakemake.output.checkpoints, ignore_errors=True)
    (partial / "checkpoints").rename(snakemake.output.checkpoints)
    shutil.rmtree(partial)
    write_table(pd.DataFrame(rows), snakemake.output.log_table, config_slice(snakemake), seed=seed)
