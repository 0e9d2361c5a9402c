import logging
import shutil
from pathlib import Path

import pandas as pd

from selfdistill.distributed import launch_ranks, save_model
from selfdistill.io import read_table, write_table
from selfdistill.jobs import claim_partial, config_slice, job_key, model_location, section, start_job
from selfdistill.models import load_model, load_tokenizer
from selfdistill.settings.methods import SFTConfig
from selfdistill.settings.models import ModelConfig
from selfdistill.settings.prompts import Prompts
from selfdistill.settings.training import LoraConfig, TrainingConfig
from selfdistill.train.model import trainable_model
from selfdistill.train.progress import Progress
from selfdistill.train.sft import select_traces, sft_examples, train_sft

start_job(snakemake)
log = logging.getLogger("train_sft")
wc, seed = snakemake.wildcards, int(snakemake.wildcards.seed)
model_cfg, hp, training = (
    section(snakemake, "model", ModelConfig),
    section(snakemake, "hp", SFTConfig),
    section(snakemake, "training", TrainingConfig),
)
out = Path(snakemake.output.adapter)
# Resumable state beside the outputs Snakemake deletes on a re-run, reused only by this same job.
partial = claim_partial(out.parent / "partial", job_key(snakemake))
launch_ranks(training)

location = model_location(snakemake)
tokenizer = load_tokenizer(location)
traces = read_table(snakemake.input.traces)
unguided = read_table(snakemake.input.unguided) if wc.ablation != "standard" else traces.iloc[:0]
selected, selection = select_traces(traces, unguided, wc.ablation, hp.select_per_problem)
log.info(
    "trace selection (%s): epistemic count %.2f -> %.2f (model's own unguided: %.2f), tokens %.1f -> %.1f",
    wc.ablation,
    selection["before_epistemic_count"].mean(),
    selection["after_epistemic_count"].mean(),
    selection["target_epistemic_count"].mean(),
    selection["before_mean_tokens"].mean(),
    selection["after_mean_tokens"].mean(),
)
examples, uncovered = sft_examples(
    read_table(snakemake.input.subset),
    selected,
    tokenizer,
    section(snakemake, "prompts", Prompts).student,
    model_cfg.chat_kwargs,
)
if uncovered:
    log.warning("%d problems have no kept teacher trace and are left out: %s", len(uncovered), uncovered[:10])
if not examples:
    raise RuntimeError(
        "no teacher trace was kept for any problem of this subset: raise teacher.n_samples, or set teacher.keep: all"
    )

model = trainable_model(
    load_model(location, dtype=model_cfg.dtype), section(snakemake, "lora", LoraConfig), training, seed
)
progress = Progress(out.parent / "tensorboard")
rows = train_sft(
    model, tokenizer, examples, hp, seed, training.loss_chunk, on_step=progress, state_path=partial / "state.pt"
)
progress.close()

if save_model(model, out):
    shutil.rmtree(partial, ignore_errors=True)
    write_table(selection, snakemake.output.selection, config_slice(snakemake), seed=seed)
    write_table(pd.DataFrame(rows), snakemake.output.log_table, config_slice(snakemake), seed=seed)
