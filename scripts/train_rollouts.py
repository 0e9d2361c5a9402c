import logging
import shutil
from pathlib import Path

import pandas as pd

from selfdistill.backends import Sampling, make_backend
from selfdistill.backends.hf import HFBackend
from selfdistill.distributed import launch_ranks, save_model
from selfdistill.evaluate import eval_problems
from selfdistill.generation import generate_table
from selfdistill.io import read_table, write_table
from selfdistill.jobs import claim_partial, job_key, model_location, param, start_job
from selfdistill.models import load_model, load_tokenizer
from selfdistill.prompts import student_user_turn
from selfdistill.train.onpolicy import train_onpolicy
from selfdistill.train.sft import trainable_model

start_job(snakemake)
log = logging.getLogger("train_rollouts")
wc = snakemake.wildcards
model_cfg, hp, templates = param(snakemake, "model"), param(snakemake, "hp"), param(snakemake, "prompts")
eval_set, grading, seed = param(snakemake, "eval_set"), param(snakemake, "grading"), int(wc.seed)
config_slice = {"model": model_cfg, "hp": hp, "prompts": templates, "eval_set": eval_set, "grading": grading, "wildcards": dict(wc)}
out = Path(snakemake.output.adapter)
# Work in progress (checkpoints, resumable state) lives outside the declared outputs, which
# Snakemake deletes before a re-run; a re-run after a crash resumes from it if it is this job's.
partial = claim_partial(out.parent / "partial", job_key(snakemake))
launch_ranks(hp.get("training"))

location = model_location(snakemake)
tokenizer = load_tokenizer(location)
model = trainable_model(load_model(location, dtype=model_cfg.get("dtype", "float32")), hp["lora"], hp.get("training"), seed)
checkpoint_problems = eval_problems(
    read_table(snakemake.input.eval_problems), {**eval_set, "n_problems": hp["eval_problems"]}, hp["eval_set"]
)


def evaluate(current):
    """Eval-set metrics of the current student, for curves against training step."""
    table = generate_table(
        HFBackend(current, tokenizer, hp["generation_batch_size"]),
        checkpoint_problems,
        [student_user_turn(templates, p) for p in checkpoint_problems["problem"]],
        Sampling.from_config(eval_set, eval_set["seed"], model_cfg),
        grading,
        model_cfg.get("chat_kwargs"),
        desc="checkpoint eval",
    )
    metrics = {
        "eval_set": hp["eval_set"],
        "accuracy": float(table["correct"].mean()),
        "mean_tokens": float(table["n_tokens"].mean()),
        "epistemic_count": float(table["epistemic_count"].mean()),
        "epistemic_density": float(table["epistemic_density"].mean()),
    }
    log.info("checkpoint eval: %s", metrics)
    return metrics


(partial / "checkpoints").mkdir(exist_ok=True)
scorer = None
if wc.rollout_method == "onpolicy" and hp.get("teacher_backend", "hf") == "vllm":
    # The frozen teacher = the initial weights, served by the model's vLLM engine beside the student
    # on the same GPU (models.<name>.vllm.gpu_memory_utilization leaves the rest to training).
    scorer = make_backend(model_cfg, location, seed=seed)
rows, curves = train_onpolicy(
    model, tokenizer, read_table(snakemake.input.subset), wc.rollout_method, wc.richness, wc.ablation, templates, hp,
    grading, seed, chat_kwargs=model_cfg.get("chat_kwargs"), evaluate=evaluate if hp["eval_every"] else None,
    checkpoint_dir=partial / "checkpoints", state_path=partial / "state.pt", teacher_scorer=scorer,
    on_step=lambda r: log.info(
        "step %d loss %.4f reward %.3f length %.1f epistemic %.2f divergence %.4f masked %.2f",
        r["step"], r["loss"], r["reward"], r["mean_length"], r["epistemic_count"], r["divergence"], r["masked_fraction"],
    ),
)
if save_model(model, out):
    shutil.rmtree(snakemake.output.checkpoints, ignore_errors=True)
    (partial / "checkpoints").rename(snakemake.output.checkpoints)
    shutil.rmtree(partial)
    write_table(pd.DataFrame(curves, columns=["step", "eval_set", "accuracy", "mean_tokens", "epistemic_count", "epistemic_density"]),
                snakemake.output.curves, config_slice, seed=seed)
    write_table(pd.DataFrame(rows), snakemake.output.log_table, config_slice, seed=seed)
