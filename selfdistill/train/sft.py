"""Offline self-distillation: SFT of the student (bare question) on the teacher's completions."""

from __future__ import annotations

import logging
import random

import pandas as pd
import torch

from selfdistill import distributed, precision, prompts
from selfdistill.settings.methods import SFTConfig
from selfdistill.train import state
from selfdistill.train.batching import completion_hidden, micro_batches, output_head, sampled_logp
from selfdistill.train.step import accumulate_and_step, backward_in_chunks, make_optimizer

log = logging.getLogger(__name__)


def sft_examples(subset: pd.DataFrame, traces: pd.DataFrame, tokenizer, student_template: str, chat_kwargs=None):
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
        student = prompts.prompt_ids(tokenizer, prompts.student_user_turn(student_template, row.problem), chat_kwargs)
        examples.append((student, list(options[row.repeat % len(options)])))
    return examples, sorted(uncovered)


def train_sft(
    model, tokenizer, examples, hp: SFTConfig, seed: int, loss_chunk: int, on_step=None, state_path=None
) -> list[dict]:
    """Train in place; returns per-step log rows (step, epoch, loss, tokens, lr, grad_norm).

    Each optimizer step covers `batch_size` examples in micro-batches of `micro_batch_size`;
    the loss is the summed NLL divided by the completion tokens of the whole step, computed over
    `loss_chunk` completion positions at a time. With `state_path`, the training state is saved
    every `checkpoint_every` steps and a re-run resumes.
    """
    rng = random.Random(seed)
    torch.manual_seed(seed)
    distributed.shard(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, hp.lr, hp.weight_decay)
    steps_per_epoch = max(1, len(examples) // hp.batch_size)
    schedule = []  # (epoch, example indices) per step, fixed up front so a resumed run sees the same
    for epoch in range(hp.epochs):
        order = list(range(len(examples)))
        rng.shuffle(order)
        schedule += [(epoch, order[s * hp.batch_size : (s + 1) * hp.batch_size]) for s in range(steps_per_epoch)]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / max(1, len(schedule)))  # linear decay
    pad = tokenizer.pad_token_id
    rows, first = [], 0
    resumed = state.restore(state_path, model, opt, rng)
    saves = state.SaveSchedule(hp.checkpoint_every)
    if resumed:
        rows, first = resumed["log_rows"], resumed["step"]
        sched.load_state_dict(resumed["scheduler"])

    head = output_head(model)

    def micro_loss(micro, scale):
        with precision.autocast(model):
            hidden, mask, ids = completion_hidden(
                model, [examples[i][0] for i in micro], [examples[i][1] for i in micro], pad
            )

        def nll(h, positions):
            with precision.autocast(model):
                logits = head(h)
            logp = sampled_logp(logits, ids[:, positions])
            return -(logp * mask[:, positions]).sum(), torch.zeros(())

        return backward_in_chunks(hidden, nll, loss_chunk, scale)

    model.train()
    for step in range(first, len(schedule)):
        epoch, idx = schedule[step]
        micros = micro_batches(idx, hp.micro_batch_size, lambda i: len(examples[i][0]) + len(examples[i][1]))
        n_total = sum(len(examples[i][1]) for i in idx)
        lr = sched.get_last_lr()[0]
        update = accumulate_and_step(params, opt, micros, micro_loss, n_total, hp.max_grad_norm, step)
        sched.step()
        rows.append(
            {
                "step": step,
                "epoch": epoch,
                "loss": update.loss / n_total,
                "tokens": n_total,
                "lr": lr,
                "grad_norm": update.grad_norm,
                "update_changed": update.changed,
                "update_ratio": update.update_ratio,
            }
        )
        if on_step:
            on_step(rows[-1], total=len(schedule))
        if state_path and saves.due(step + 1):
            state.save(
                state_path, state.capture(model, opt, step + 1, rng, log_rows=rows, scheduler=sched.state_dict())
            )
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
            pick = (
                group.assign(_d=(group["epistemic_count"] - goal).abs()).sort_values(["_d", "sample"]).head(per_problem)
            )
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
