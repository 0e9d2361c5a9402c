"""Training from the student's own rollouts, one linear loop for every rollout method: sample n
rollouts per training problem from the current student, grade them, let the method's objective
choose the ones that train and give their per-token loss, step; checkpoint and save resumable state
every `checkpoint_every` steps. The objectives (self-distillation, GRPO) are in
`selfdistill.train.objectives`.
"""

from __future__ import annotations

import functools
import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from selfdistill import distributed, epistemic, prompts
from selfdistill.backends import Sampling
from selfdistill.backends.hf import HFBackend
from selfdistill.grading import grade_responses
from selfdistill.train import state
from selfdistill.train.batching import completion_logits
from selfdistill.train.step import accumulate_and_step

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RolloutConfig:
    """What every rollout method shares (sections `onpolicy`, `grpo`)."""

    steps: int  # optimizer steps (each on a freshly sampled batch)
    prompts_per_step: int  # training problems per step
    n_rollouts: int  # rollouts sampled per problem (a GRPO group)
    temperature: float  # rollout sampling; the losses use logits / temperature
    top_p: float
    top_k: int  # 0 = off
    max_new_tokens: int  # rollout budget; a cut-off rollout gets reward 0
    lr: float
    micro_batch_size: int  # rollouts per forward/backward (gradient accumulation keeps the step)
    generation_batch_size: int  # sequences per generate() call
    max_grad_norm: float
    checkpoint_every: int  # save a checkpoint (evaluated by its own rule) and resumable state every k steps; 0 = never


def _micro_loss(model, objective, student_ids, completion_ids, pad, index, micro):
    """A micro-batch's loss summed over its valid tokens, and its summed divergence (NaN: none)."""
    logits, mask, ids = completion_logits(
        model, [student_ids[k] for k in micro], [completion_ids[k] for k in micro], pad
    )
    per_token, divergence = objective.token_loss(logits, ids, micro, index)
    return (per_token * mask).sum(), math.nan if divergence is None else (divergence * mask).sum().item()


def rollout_rewards(completions, golds, grading) -> list[bool]:
    """Verifiable 0/1 reward: graded correct and not cut off by the token budget."""
    graded = grade_responses([c.text for c in completions], golds, grading)
    return [g["correct"] and c.finish_reason == "stop" for g, c in zip(graded, completions, strict=True)]


def train_on_rollouts(
    model,
    tokenizer,
    subset,
    objective,
    hp: RolloutConfig,
    templates,
    grading,
    seed: int,
    chat_kwargs=None,
    checkpoint_dir=None,
    state_path=None,
    on_step=None,
) -> list[dict]:
    """Train the student in place with `objective`; returns the per-step log rows.

    With `state_path`, the full training state is saved there every `checkpoint_every` steps and,
    if present at the start, training resumes from it with the same result as an uninterrupted run.
    The objective must be made before this call (a frozen teacher copies the initial weights).
    """
    rng = random.Random(seed)
    torch.manual_seed(seed)
    pad = tokenizer.pad_token_id
    distributed.shard(model)
    objective.shard()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=hp.lr, weight_decay=0.0)
    backend = HFBackend(model, tokenizer, batch_size=hp.generation_batch_size, ranks=distributed)

    rows, order, log_rows = list(subset.itertuples()), [], []
    resumed = state.restore(state_path, model, opt, rng)
    if resumed:
        order, log_rows = resumed["order"], resumed["log_rows"]
        objective.load_state_dict(resumed["objective"])
        log.info("resumed from %s at step %d", state_path, resumed["step"])
    for step in range(resumed["step"] if resumed else 0, hp.steps):
        batch = []
        while len(batch) < hp.prompts_per_step:
            if not order:
                order = list(range(len(rows)))
                rng.shuffle(order)
            batch.append(rows[order.pop()])
        student_prompts = [
            prompts.prompt_ids(tokenizer, prompts.student_user_turn(templates.student, r.problem), chat_kwargs)
            for r in batch
        ]
        sampling = Sampling(hp.n_rollouts, hp.temperature, hp.top_p, hp.top_k, hp.max_new_tokens, seed * 100_003 + step)
        completions = backend.generate(student_prompts, sampling, desc=f"rollouts step {step}")
        # Graded on rank 0 only: a grading timeout on one rank must not change another's batch.
        correct = distributed.broadcast(
            rollout_rewards(completions, [batch[c.prompt_index].answer for c in completions], grading)
            if distributed.rank() == 0
            else None
        )
        keep = objective.prepare(batch, completions, correct)
        student_ids = [student_prompts[c.prompt_index] for c in completions]
        completion_ids = [c.token_ids for c in completions]
        n_tokens = sum(len(completion_ids[k]) for k in keep)
        micros = [keep[i : i + hp.micro_batch_size] for i in range(0, len(keep), hp.micro_batch_size)]

        micro_loss = functools.partial(_micro_loss, model, objective, student_ids, completion_ids, pad)
        model.train()
        for _ in range(objective.updates_per_batch):
            loss_sum, div_sum, grad_norm = accumulate_and_step(
                params, opt, micros, micro_loss, n_tokens, hp.max_grad_norm, step
            )
        objective.after_step()

        texts = [c.text for c in completions]
        log_rows.append(
            {
                "step": step,
                "loss": loss_sum / max(1, n_tokens),
                "reward": float(np.mean(correct)),
                "mean_length": float(np.mean([len(i) for i in completion_ids])),
                "epistemic_count": float(np.mean([epistemic.substring_count(t) for t in texts])),
                "epistemic_words": float(np.mean([epistemic.word_count(t) for t in texts])),
                "divergence": div_sum / max(1, n_tokens),
                "grad_norm": grad_norm,
                "masked_fraction": 1 - len(keep) / len(completions),
                "tokens": n_tokens,
            }
        )
        if on_step:
            on_step(log_rows[-1], total=hp.steps)
        done = step + 1
        if hp.checkpoint_every and done % hp.checkpoint_every == 0:
            if checkpoint_dir:
                distributed.save_pretrained(model, Path(checkpoint_dir) / f"step{done}")
            if state_path:
                state.save(
                    state_path,
                    state.capture(
                        model, opt, done, rng, order=order, log_rows=log_rows, objective=objective.state_dict()
                    ),
                )
    model.eval()
    return log_rows
