"""Offline self-distillation: LoRA SFT of the student (bare question) on teacher completions."""

from __future__ import annotations

import logging
import random

import pandas as pd
import torch
from peft import LoraConfig, get_peft_model

from selfdistill import distributed, prompts
from selfdistill.train import state
from selfdistill.train.batching import build_batch, completion_nll_sum
from selfdistill.train.step import require_finite

log = logging.getLogger(__name__)


def sft_examples(subset: pd.DataFrame, traces: pd.DataFrame, tokenizer, templates: dict, chat_kwargs=None):
    """(student prompt ids, teacher completion ids) per subset row.

    The k-th repeat of a problem takes its k-th kept trace (cyclically), so a repeated problem
    contributes different traces. Completion ids are the teacher's own ids, never re-tokenized.
    """
    by_problem = {pid: g["token_ids"].tolist() for pid, g in traces.groupby("problem_id", sort=False)}
    examples, uncovered = [], set()
    for row in subset.itertuples():
        options = by_problem.get(row.problem_id)
        if not options:
            uncovered.add(row.problem_id)
            continue
        student = prompts.prompt_ids(tokenizer, prompts.student_user_turn(templates, row.problem), chat_kwargs)
        examples.append((student, list(options[row.repeat % len(options)])))
    return examples, sorted(uncovered)


def trainable_model(model, lora: dict, training: dict | None = None, seed: int = 0):
    """The model to train: a LoRA adapter on it, or all of its weights (`finetune: full`); with
    `gradient_checkpointing`, activations are recomputed in backward (less memory, more compute).
    The adapter's random initialization comes from `seed` (the same on every training rank)."""
    training = training or {}
    torch.manual_seed(seed)
    if training.get("gradient_checkpointing"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if training.get("finetune", "lora") == "full":
        return model.requires_grad_(True)
    return add_lora(model, lora)


def add_lora(model, lora: dict):
    config = LoraConfig(
        r=lora["r"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora["dropout"],
        target_modules=lora["target_modules"],
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def train_sft(model, tokenizer, examples, hp: dict, seed: int, on_step=None, state_path=None) -> list[dict]:
    """Train in place; returns per-step log rows (step, epoch, loss, tokens, lr, grad_norm).

    Each optimizer step covers `batch_size` examples in micro-batches of `micro_batch_size`;
    the loss is the summed NLL divided by the completion tokens of the whole step. With
    `state_path`, the training state is saved every `checkpoint_every` steps and a re-run resumes.
    """
    rng = random.Random(seed)
    torch.manual_seed(seed)
    world = distributed.world_size()
    distributed.shard(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=hp["lr"], weight_decay=0.0)
    steps_per_epoch = max(1, len(examples) // hp["batch_size"])
    schedule = []  # (epoch, example indices) per step, fixed up front so a resumed run sees the same
    for epoch in range(hp["epochs"]):
        order = list(range(len(examples)))
        rng.shuffle(order)
        schedule += [(epoch, order[s * hp["batch_size"] : (s + 1) * hp["batch_size"]]) for s in range(steps_per_epoch)]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / max(1, len(schedule)))  # linear decay
    pad = tokenizer.pad_token_id
    rows, first = [], 0
    resumed = state.restore(state_path, model, opt, rng)
    if resumed:
        rows, first = resumed["log_rows"], resumed["step"]
        sched.load_state_dict(resumed["scheduler"])
    model.train()
    for step in range(first, len(schedule)):
        epoch, idx = schedule[step]
        micro = [idx[i : i + hp["micro_batch_size"]] for i in range(0, len(idx), hp["micro_batch_size"])]
        n_total = sum(len(examples[i][1]) for i in idx)
        opt.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for m, weight in distributed.my_share(micro):
            batch = build_batch([examples[i][0] for i in m], [examples[i][1] for i in m], pad)
            nll, _ = completion_nll_sum(model, {k: v.to(model.device) for k, v in batch.items()})
            # Sharded gradients are averaged over ranks: x world makes them the sum over the step.
            (nll * (weight * world / n_total)).backward()
            loss_sum += nll.item() * weight
        loss_sum = distributed.all_sum(loss_sum)
        grad_norm = distributed.full(torch.nn.utils.clip_grad_norm_(params, hp["max_grad_norm"])).item()
        require_finite(step, loss=loss_sum, grad_norm=grad_norm)
        lr = sched.get_last_lr()[0]
        opt.step()
        sched.step()
        rows.append({"step": step, "epoch": epoch, "loss": loss_sum / n_total, "tokens": n_total, "lr": lr, "grad_norm": grad_norm})
        if on_step:
            on_step(rows[-1])
        every = hp.get("checkpoint_every", 0)
        if state_path and every and (step + 1) % every == 0:
            state.save(state_path, state.capture(model, opt, step + 1, rng, log_rows=rows, scheduler=sched.state_dict()))
    model.eval()
    return rows


def select_traces(traces: pd.DataFrame, unguided: pd.DataFrame, ablation: str, per_problem: int):
    """The offline analogue of the uncertainty ablation: choose, per problem, which kept teacher
    traces to train on.

    standard: all of them. preserve: the `per_problem` traces whose epistemic count is closest to
    the median count of the model's own correct unguided traces of that problem (equal
    correctness: both sides are correct traces). suppress: the `per_problem` lowest counts.
    Returns (selected traces, per-problem report of the achieved match).
    """
    kept = traces[traces["kept"]]
    target = unguided[unguided["correct"]].groupby("problem_id")["epistemic_count"].median()
    fallback = unguided["epistemic_count"].median() if len(unguided) else 0.0
    chosen, report = [], []
    for pid, group in kept.groupby("problem_id", sort=False):
        goal = float(target.get(pid, fallback))
        if ablation == "standard":
            pick = group
        elif ablation == "preserve":
            pick = group.assign(_d=(group["epistemic_count"] - goal).abs()).sort_values(["_d", "sample"]).head(per_problem)
        elif ablation == "suppress":
            pick = group.sort_values(["epistemic_count", "sample"]).head(per_problem)
        else:
            raise ValueError(f"unknown ablation {ablation!r} for sft: use standard, preserve or suppress")
        chosen.append(pick.drop(columns="_d", errors="ignore"))
        own = unguided[unguided["problem_id"] == pid]
        report.append(
            {
                "problem_id": pid,
                "target_epistemic_count": goal,
                "unguided_mean_tokens": own["n_tokens"].mean() if len(own) else float("nan"),
                "candidates": len(group),
                "selected": len(pick),
                "before_epistemic_count": group["epistemic_count"].mean(),
                "after_epistemic_count": pick["epistemic_count"].mean(),
                "before_mean_tokens": group["n_tokens"].mean(),
                "after_mean_tokens": pick["n_tokens"].mean(),
            }
        )
    selected = pd.concat(chosen) if chosen else kept.iloc[:0]
    return selected, pd.DataFrame(report)
