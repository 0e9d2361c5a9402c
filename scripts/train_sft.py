import logging
import shutil
from pathlib import Path

import pandas as pd

from selfdistill.distributed import launch_ranks, save_model
from selfdistill.io import read_table, write_table
from selfdistill.jobs import claim_partial, job_key, model_location, param, start_job
from selfdistill.models import load_model, load_tokenizer
from selfdistill.train.sft import trainable_model, select_traces, sft_examples, train_sft

start_job(snakemake)
log = logging.getLogger("train_sft")
wc = snakemake.wildcards
model_cfg, hp, templates, seed = param(snakemake, "model"), param(snakemake, "sft"), param(snakemake, "prompts"), int(wc.seed)
config_slice = {"model": model_cfg, "sft": hp, "prompts": templates, "wildcards": dict(wc)}
out = Path(snakemake.output.adapter)
# Resumable state beside the outputs Snakemake deletes on a re-run, reused only by this same job.
partial = claim_partial(out.parent / "partial", job_key(snakemake))
launch_ranks(hp.get("training"))

location = model_location(snakemake)
tokenizer = load_tokenizer(location)
traces = read_table(snakemake.input.traces)
unguided = read_table(snakemake.input.unguided) if wc.ablation != "standard" else traces.iloc[:0]
selected, selection = select_traces(traces, unguided, wc.ablation, hp["select_per_problem"])
log.info(
    "trace selection (%s): epistemic count %.2f -> %.2f (model's own unguided: %.2f), tokens %.1f -> %.1f",
    wc.ablation, selection["before_epistemic_count"].mean(), selection["after_epistemic_count"].mean(),
    selection["target_epistemic_count"].mean(), selection["before_mean_tokens"].mean(), selection["after_mean_tokens"].mean(),
)
examples, uncovered = sft_examples(read_table(snakemake.input.subset), selected, tokenizer, templates, model_cfg.get("chat_kwargs"))
if uncovered:
    log.warning("%d problems have no kept teacher trace and are left out: %s", len(uncovered), uncovered[:10])
if not examples:
    raise RuntimeError("no teacher trace was kept for any problem of this subset: raise teacher.n_samples, or set teacher.keep: all")

model = trainable_model(load_model(location, dtype=model_cfg.get("dtype", "float32")), hp["lora"], hp.get("training"), seed)
rows = train_sft(
    model, tokenizer, examples, hp, seed,
    on_step=lambda r: log.info("step %d loss %.4f grad_norm %.3f", r["step"], r["loss"], r["grad_norm"]),
    state_path=partial / "state.pt",
)

if save_model(model, out):
    shutil.rmtree(partial, ignore_errors=True)
    write_table(selection, snakemake.output.selection, config_slice, seed=seed)
    write_table(pd.DataFrame(rows), snakemake.output.log_table, config_slice, seed=seed)
