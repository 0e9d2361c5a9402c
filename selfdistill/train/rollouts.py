"""Training from the student's own rollouts, one linear loop for every rollout method: sample n
rollouts per training problem from the current student, grade them, let the method's objective
choose the ones that train and give their per-token loss, step; checkpoint and save resumable state
every `checkpoint_every` steps. The objectives (self-distillation, GRPO) are in
`selfdistill.train.objectives`; the rollout engines (the student itself through transformers, or a
vLLM engine told the new weights after every step) in `selfdistill.backends`.

Losses are computed `loss_chunk` completion positions at a time (`backward_in_chunks`), so their
memory does not grow with the response length. When the rollouts come from an engine that reports
its own log-probs of the sampled tokens (vLLM), each step logs how far the trainer's log-probs are
from the engine's, and with `importance_sampling: token` every token's loss is weighted by the
truncated ratio min(p_trainer / p_engine, threshold) (detached), as the paper's verl scripts do
(`rollout_is=token`), for both methods: the loss is an expectation over the sampling policy, and
the ratio turns the engine's samples into the trainer's.
"""

from __future__ import annotations

import functools
import logging
import math
import random
from pathlib import Path

import numpy as np
import torch

from selfdistill import distributed, epistemic, precision, prompts
from selfdistill.backends import Sampling
from selfdistill.grading import grade_responses
from selfdistill.settings.methods import RolloutConfig
from selfdistill.settings.training import EngineConfig
from selfdistill.train import state
from selfdistill.train.batching import completion_hidden, micro_batches, output_head, sampled_logp
from selfdistill.train.step import accumulate_and_step, backward_in_chunks, make_optimizer

log = logging.getLogger(__name__)
# A token's engine/trainer probability ratio outside [1/2, 2] counts as a mismatch in the log.
MISMATCH_RATIO = 2.0


def rollout_rewards(completions, golds, grading) -> list[bool]:
    """Verifiable 0/1 reward: graded correct and not cut off by the token budget."""
    graded = grade_responses([c.text for c in completions], golds, grading)
    return [g["correct"] and c.finish_reason == "stop" for g, c in zip(graded, completions, strict=True)]


class _Step:
    """One step's batch: its rollouts' ids, what the engine reported of them, and, when a loss
    needs them, the sampled tokens' log-probs under the weights the batch was sampled with."""

    def __init__(self, student_prompts, completions):
        self.student_ids = [student_prompts[c.prompt_index] for c in completions]
        self.completion_ids = [c.token_ids for c in completions]
        self.engine_logp = [c.logprobs for c in completions] if completions and completions[0].logprobs else None
        self.old_logp, self.is_weight = {}, {}  # rollout -> float64 tensor [its length]
        self.gap_sum = self.outside = self.counted = 0.0

    def length(self, k: int) -> int:
        return len(self.student_ids[k]) + len(self.completion_ids[k])

    @staticmethod
    def chunk(per_rollout: dict, micro, positions, width, device):
        """A micro-batch's per-rollout values (float64), padded to `width`, for one chunk of positions."""
        out = torch.zeros(len(micro), width, dtype=torch.float64)
        for row, k in enumerate(micro):
            out[row, : len(per_rollout[k])] = per_rollout[k]
        return out[:, positions].to(device)


@torch.no_grad()
def _sampled_logp_pass(model, head, batch: _Step, keep, micro_batch_size, pad, temperature, loss_chunk, engine):
    """The sampled tokens' log-probs under the current weights (before this step's updates), for
    every kept rollout; with engine log-probs, the step's mismatch statistics and IS weights."""
    for micro in micro_batches(keep, micro_batch_size, batch.length):
        with precision.autocast(model):
            hidden, mask, ids = completion_hidden(
                model, [batch.student_ids[k] for k in micro], [batch.completion_ids[k] for k in micro], pad
            )
            logp = torch.cat(
                [
                    sampled_logp(head(hidden[:, s : s + loss_chunk]), ids[:, s : s + loss_chunk], temperature)
                    for s in range(0, hidden.shape[1], loss_chunk)
                ],
                1,
            )
        for row, k in enumerate(micro):
            batch.old_logp[k] = logp[row, : len(batch.completion_ids[k])].double().cpu()
    if batch.engine_logp is None:
        return
    for k in keep:
        gap = batch.old_logp[k] - torch.tensor(batch.engine_logp[k], dtype=torch.float64)
        batch.gap_sum += float(gap.abs().sum())
        batch.outside += float((gap.abs() > math.log(MISMATCH_RATIO)).sum())
        batch.counted += len(gap)
        if engine.importance_sampling == "token":
            batch.is_weight[k] = gap.exp().clamp(max=engine.is_threshold)


def _micro_loss(model, head, objective, batch: _Step, pad, loss_chunk, micro, scale):
    """A micro-batch's loss (summed over its valid tokens; back-propagated x scale, chunk by chunk)
    and its summed divergence (NaN: none)."""
    with precision.autocast(model):
        hidden, mask, ids = completion_hidden(
            model, [batch.student_ids[k] for k in micro], [batch.completion_ids[k] for k in micro], pad
        )
    context = objective.micro_context(micro)
    width = ids.shape[1]

    def chunk_loss(h, positions):
        with precision.autocast(model):
            logits = head(h)
        valid = mask[:, positions]
        old = batch.chunk(batch.old_logp, micro, positions, width, h.device) if batch.old_logp else None
        per_token, divergence = objective.token_loss(logits, ids[:, positions], context, old, positions)
        if batch.is_weight:
            per_token = per_token * batch.chunk(batch.is_weight, micro, positions, width, h.device).to(per_token.dtype)
        extra = (divergence * valid).sum() if divergence is not None else torch.tensor(math.nan)
        return (per_token * valid).sum(), extra

    return backward_in_chunks(hidden, chunk_loss, loss_chunk, scale)


def _mini_batches(keep: list[int], completions, prompts_per_mini_batch: int) -> list[list[int]]:
    """The kept rollouts grouped by prompt into mini-batches of that many prompts (one optimizer
    step each, as verl's ppo_mini_batch_size); 0: one mini-batch."""
    if not prompts_per_mini_batch:
        return [keep] if keep else []
    prompts = sorted({completions[k].prompt_index for k in keep})
    groups = [set(prompts[i : i + prompts_per_mini_batch]) for i in range(0, len(prompts), prompts_per_mini_batch)]
    return [[k for k in keep if completions[k].prompt_index in group] for group in groups]


def train_on_rollouts(
    model,
    tokenizer,
    subset,
    objective,
    hp: RolloutConfig,
    templates,
    grading,
    seed: int,
    rollouts,
    loss_chunk: int,
    engine: EngineConfig | None = None,
    chat_kwargs=None,
    checkpoint_dir=None,
    state_path=None,
    on_step=None,
) -> list[dict]:
    """Train the student in place with `objective`; returns the per-step log rows.

    rollouts: the rollout engine (`selfdistill.backends.make_rollout_engine`), told the student's weights before
    each step's sampling. With `state_path`, the full training state is saved there every
    `checkpoint_every` steps and, if present at the start, training resumes from it with the same
    result as an uninterrupted run. The objective must be made before this call (a frozen teacher
    copies the initial weights).
    """
    rng = random.Random(seed)
    torch.manual_seed(seed)
    pad = tokenizer.pad_token_id
    distributed.shard(model)
    objective.shard()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, hp.lr, hp.weight_decay)
    head = output_head(model)

    # Linear warm-up over training steps (sampled batches), then constant.
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / hp.warmup_steps) if hp.warmup_steps else 1.0
    )

    rows, order, log_rows = list(subset.itertuples()), [], []
    resumed = state.restore(state_path, model, opt, rng)
    saves = state.SaveSchedule(hp.checkpoint_every)
    if resumed:
        order, log_rows = resumed["order"], resumed["log_rows"]
        objective.load_state_dict(resumed["objective"])
        sched.load_state_dict(resumed["scheduler"])
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
        sampling = Sampling(
            hp.n_rollouts,
            hp.temperature,
            hp.top_p,
            hp.top_k,
            hp.max_new_tokens,
            seed * 100_003 + step,
            max_total_tokens=hp.max_total_tokens or 0,
        )
        rollouts.sync(model)  # the engine samples from the student as it is now
        completions = distributed.generate_shares(rollouts, student_prompts, sampling, desc=f"rollouts step {step}")
        # Graded on rank 0 only: a grading timeout on one rank must not change another's batch.
        correct = distributed.broadcast(
            rollout_rewards(completions, [batch[c.prompt_index].answer for c in completions], grading)
            if distributed.rank() == 0
            else None
        )
        keep = objective.prepare(batch, completions, correct)
        step_batch = _Step(student_prompts, completions)
        model.train()
        if objective.needs_old_logp or step_batch.engine_logp is not None:
            _sampled_logp_pass(
                model, head, step_batch, keep, hp.micro_batch_size, pad, hp.temperature, loss_chunk, engine
            )
        micro_loss = functools.partial(_micro_loss, model, head, objective, step_batch, pad, loss_chunk)
        n_tokens = sum(len(step_batch.completion_ids[k]) for k in keep)
        lr = sched.get_last_lr()[0]
        updates = [  # every optimizer step of this batch: updates_per_batch passes over its mini-batches
            accumulate_and_step(
                params,
                opt,
                micro_batches(mini, hp.micro_batch_size, step_batch.length),
                micro_loss,
                sum(len(step_batch.completion_ids[k]) for k in mini),
                hp.max_grad_norm,
                step,
            )
            for _ in range(objective.updates_per_batch)
            for mini in _mini_batches(keep, completions, hp.mini_batch_prompts)
        ]
        sched.step()
        objective.after_step()

        texts = [c.text for c in completions]
        counted = distributed.all_sum(step_batch.counted)
        log_rows.append(
            {
                "step": step,
                # Means over the batch's optimizer steps (each token counted once per pass over the batch).
                "loss": sum(u.loss for u in updates) / max(1, n_tokens * objective.updates_per_batch),
                "reward": float(np.mean(correct)),
                "mean_length": float(np.mean([len(i) for i in step_batch.completion_ids])),
                "epistemic_count": float(np.mean([epistemic.substring_count(t) for t in texts])),
                "epistemic_words": float(np.mean([epistemic.word_count(t) for t in texts])),
                "divergence": sum(u.extra for u in updates) / max(1, n_tokens * objective.updates_per_batch),
                "grad_norm": float(np.mean([u.grad_norm for u in updates])) if updates else 0.0,
                "update_changed": float(np.mean([u.changed for u in updates])) if updates else math.nan,
                "update_ratio": float(np.mean([u.update_ratio for u in updates])) if updates else math.nan,
                "lr": lr,
                "masked_fraction": 1 - len(keep) / len(completions),
                "tokens": n_tokens,
                # Engine vs trainer on the sampled tokens (NaN when the rollouts are the trainer's own).
                "engine_logp_gap": distributed.all_sum(step_batch.gap_sum) / counted if counted else math.nan,
                "engine_ratio_outside": distributed.all_sum(step_batch.outside) / counted if counted else math.nan,
                **objective.step_log(),
            }
        )
        if on_step:
            on_step(log_rows[-1], total=hp.steps)
        done = step + 1
        if checkpoint_dir and hp.checkpoint_every and done % hp.checkpoint_every == 0:
            distributed.save_pretrained(model, Path(checkpoint_dir) / f"step{done}")
        if state_path and saves.due(done):
            state.save(
                state_path,
                state.capture(
                    model,
                    opt,
                    done,
                    rng,
                    order=order,
                    log_rows=log_rows,
                    objective=objective.state_dict(),
                    scheduler=sched.state_dict(),
                ),
            )
    model.eval()
    return log_rows
