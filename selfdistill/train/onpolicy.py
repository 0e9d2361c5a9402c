"""On-policy training from the student's own rollouts: self-distillation (SDPO-style) and GRPO.

Both share one loop: sample n rollouts per training problem from the current student, grade
them, compute a per-token loss over completion positions only, step. They differ only in the
per-token loss: a divergence to the context-conditioned teacher, or a clipped policy gradient.
"""

from __future__ import annotations

import copy
import logging
import math
import random
from pathlib import Path

import numpy as np
import torch
from peft import PeftModel

from selfdistill import distributed, epistemic, prompts
from selfdistill.backends import Sampling
from selfdistill.backends.hf import HFBackend
from selfdistill.grading import grade_responses
from selfdistill.train import state
from selfdistill.train.batching import completion_logits
from selfdistill.train.losses import ablation_target, generalized_jsd, topk_tail, with_tail
from selfdistill.train.step import require_finite

log = logging.getLogger(__name__)

SAMPLED_LOGP_FLOOR = -20.0


# ---- per-token losses -------------------------------------------------------------------


def distill_token_loss(student_logits, teacher, ids, in_e_vocab, hp: dict, ablation: str):
    """Per-token loss and divergence [B, L] of the student to the (ablated) teacher target.

    teacher: logits [B, L, V], or (top-k ids, their log-probs) [B, L, k] from a sparse scorer (vLLM).
    Logits are divided by the sampling temperature: the loss is defined on the distribution the
    rollouts were sampled from. support: full vocabulary, the student's top-k + tail (`topk`), the
    teacher's top-k + tail (`teacher_topk`), or the sampled token.
    """
    s = torch.log_softmax(student_logits.float() / hp["temperature"], -1)
    if isinstance(teacher, tuple):
        top, t_top = teacher  # log-probs at temperature 1 (checked in the config)
    else:
        t = torch.log_softmax(teacher.float() / hp["temperature"], -1)
        if hp["support"] == "teacher_topk":
            t_top, top = t.topk(hp["topk"], dim=-1)
    in_e = in_e_vocab.expand_as(s)
    if hp["support"] == "topk":
        s, t, top = topk_tail(s, t, hp["topk"])
    elif hp["support"] == "teacher_topk":
        s, t = with_tail(s.gather(-1, top)), with_tail(t_top.float())
    if hp["support"] in ("topk", "teacher_topk"):
        in_e = torch.cat([in_e_vocab[top], torch.zeros_like(top[..., :1], dtype=torch.bool)], -1)
    target = ablation_target(t, s, in_e, ablation)
    if hp["support"] == "sampled":
        # Sampled-token reverse KL: the per-token reward log q̃(y) - log p(y) weights log p(y).
        s_y, t_y = s.gather(-1, ids[..., None])[..., 0], target.gather(-1, ids[..., None])[..., 0]
        # A token the target rules out (suppress, y in E) has log q̃ = -inf: bound its penalty.
        reward = (t_y.clamp(min=SAMPLED_LOGP_FLOOR) - s_y).detach()
        return -reward * s_y, -reward
    div = generalized_jsd(s, target, hp["alpha"])
    return div, div.detach()


def grpo_token_loss(new_logp, old_logp, advantages, hp: dict):
    """Clipped-ratio policy gradient per token (asymmetric clip, no KL term)."""
    ratio = torch.exp(new_logp - old_logp)
    clipped = ratio.clamp(1 - hp["clip_low"], 1 + hp["clip_high"])
    adv = advantages[:, None]
    return -torch.minimum(ratio * adv, clipped * adv)


def group_advantages(rewards: np.ndarray, n: int, scale: bool) -> np.ndarray:
    """Reward minus its group mean (a group = the n rollouts of one prompt), optionally / std."""
    groups = rewards.reshape(-1, n)
    adv = groups - groups.mean(1, keepdims=True)
    if scale:
        adv = adv / (groups.std(1, keepdims=True) + 1e-4)
    return adv.reshape(-1)


def sampled_logp(logits, ids, temperature):
    return torch.log_softmax(logits.float() / temperature, -1).gather(-1, ids[..., None])[..., 0]


# ---- teacher ----------------------------------------------------------------------------


class Teacher:
    """The context-conditioned scorer: frozen initial model (adapter disabled), an EMA of the
    student's adapter, or the live student; always without gradient."""

    def __init__(self, model, mode: str, ema_rate: float, scorer=None):
        self.model, self.mode, self.rate, self.scorer = model, mode, ema_rate, scorer
        # Without an adapter to disable (full fine-tuning), the frozen teacher is a copy of the initial weights.
        self.initial = None
        if mode == "frozen" and scorer is None and not isinstance(model, PeftModel):
            self.initial = copy.deepcopy(model).eval().requires_grad_(False)
        if mode == "ema":
            self.ema = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def logits(self, prompts_ids, completions, pad_id):
        was_training = self.model.training
        self.model.eval()
        if self.initial is not None:
            out = completion_logits(self.initial, prompts_ids, completions, pad_id)[0]
        elif self.mode == "frozen":
            with self.model.disable_adapter():
                out = completion_logits(self.model, prompts_ids, completions, pad_id)[0]
        elif self.mode == "ema":
            live = self._swap(self.ema)
            out = completion_logits(self.model, prompts_ids, completions, pad_id)[0]
            self._swap(live)
        else:
            out = completion_logits(self.model, prompts_ids, completions, pad_id)[0]
        self.model.train(was_training)
        return out

    def shard(self):
        """Follow the student onto its shards: the initial copy sharded too, the EMA restarted
        from the (sharded) initial adapter."""
        if self.initial is not None:
            distributed.shard(self.initial)
        if self.mode == "ema":
            self.ema = {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}

    def sparse(self, prompts_ids, completions, k: int):
        """(ids, log-probs) [B, L, k] of the teacher's top-k at each completion position, from the
        scorer (vLLM, initial weights); padding positions hold a finite placeholder (masked out anyway)."""
        rows = self.scorer.prompt_topk_logprobs(prompts_ids, completions, k)
        width = max(len(c) for c in completions)
        ids = torch.zeros(len(rows), width, k, dtype=torch.long)
        logp = torch.full((len(rows), width, k), -math.log(k) - 1.0)
        for b, (row_ids, row_logp) in enumerate(rows):
            ids[b, : len(row_ids)] = torch.tensor(row_ids, dtype=torch.long)
            logp[b, : len(row_logp)] = torch.tensor(row_logp)
        return ids.to(self.model.device), logp.to(self.model.device)

    def _swap(self, weights):
        params = dict(self.model.named_parameters())
        previous = {n: params[n].detach().clone() for n in weights}
        for n, w in weights.items():
            params[n].data.copy_(w)
        return previous

    @torch.no_grad()
    def update(self):
        if self.mode == "ema":
            for n, p in self.model.named_parameters():
                if n in self.ema:
                    self.ema[n].lerp_(p.detach(), self.rate)


# ---- the shared loop --------------------------------------------------------------------


def rollout_rewards(completions, golds, grading: dict) -> list[bool]:
    """Verifiable 0/1 reward: graded correct and not cut off by the token budget."""
    graded = grade_responses([c.text for c in completions], golds, grading["workers"], grading["timeout_s"])
    return [g["correct"] and c.finish_reason == "stop" for g, c in zip(graded, completions)]


def teacher_turns(rows, completions, texts, correct, richness, templates, n):
    """Teacher user turn per rollout; None where a demonstration is needed and missing.

    regen (SDPO's demonstration mode): the context is another successful rollout of the same group.
    """
    turns = []
    for k, c in enumerate(completions):
        row = rows[c.prompt_index]
        demo = ""
        if richness == "regen":
            group = range(c.prompt_index * n, (c.prompt_index + 1) * n)
            others = [j for j in group if j != k and correct[j]]
            if not others:
                turns.append(None)
                continue
            demo = texts[others[0]]
        turns.append(prompts.teacher_user_turn(templates, richness, row.problem, row.answer, row.solution, demo))
    return turns


def train_onpolicy(model, tokenizer, subset, method: str, richness: str, ablation: str, templates: dict, hp: dict,
                   grading: dict, seed: int, chat_kwargs=None, evaluate=None, checkpoint_dir=None, on_step=None,
                   state_path=None, teacher_scorer=None):
    """Train the student in place; returns (per-step log rows, checkpoint eval rows).

    teacher_scorer: a backend with `prompt_topk_logprobs` (vLLM) that holds the initial weights and
    scores for the frozen teacher (support teacher_topk). With `state_path`, the full training state is saved there every `checkpoint_every` steps and,
    if present at the start, training resumes from it with the same result as an uninterrupted run.
    """
    rng = random.Random(seed)
    torch.manual_seed(seed)
    pad = tokenizer.pad_token_id
    teacher = Teacher(model, hp.get("teacher", "frozen"), hp.get("ema_rate", 0.0), teacher_scorer) if method == "onpolicy" else None
    world = distributed.world_size()
    distributed.shard(model)  # after the teacher copied the initial weights
    if teacher:
        teacher.shard()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=hp["lr"], weight_decay=0.0)
    backend = HFBackend(model, tokenizer, batch_size=hp["generation_batch_size"])
    in_e_vocab = torch.zeros(len(tokenizer), dtype=torch.bool, device=model.device)
    in_e_vocab[epistemic.epistemic_token_ids(tokenizer)] = True
    n = hp["n_rollouts"]

    rows = list(subset.itertuples())
    order = []
    log_rows, eval_rows = [], []
    resumed = state.restore(state_path, model, opt, rng)
    if resumed:
        order, log_rows, eval_rows = resumed["order"], resumed["log_rows"], resumed["eval_rows"]
        if teacher and teacher.mode == "ema":
            teacher.ema = resumed["teacher_ema"]
        log.info("resumed from %s at step %d", state_path, resumed["step"])
    elif evaluate:
        eval_rows.append({"step": 0, **evaluate(model)})
    for step in range(resumed["step"] if resumed else 0, hp["steps"]):
        batch = []
        while len(batch) < hp["prompts_per_step"]:
            if not order:
                order = list(range(len(rows)))
                rng.shuffle(order)
            batch.append(rows[order.pop()])
        student_prompts = [
            prompts.prompt_ids(tokenizer, prompts.student_user_turn(templates, r.problem), chat_kwargs) for r in batch
        ]
        sampling = Sampling(n, hp["temperature"], hp["top_p"], hp["top_k"], hp["max_new_tokens"], seed * 100_003 + step)
        completions = backend.generate(student_prompts, sampling, desc=f"rollouts step {step}")
        texts = [c.text for c in completions]
        # Graded on rank 0 only: a grading timeout on one rank must not change another's batch.
        correct = distributed.broadcast(
            rollout_rewards(completions, [batch[c.prompt_index].answer for c in completions], grading)
            if distributed.rank() == 0 else None
        )
        comp_ids = [c.token_ids for c in completions]
        stu_ids = [student_prompts[c.prompt_index] for c in completions]

        keep = list(range(len(completions)))
        if method == "onpolicy":
            turns = teacher_turns(batch, completions, texts, correct, richness, templates, n)
            keep = [k for k, t in enumerate(turns) if t is not None]
            tea_ids = {k: prompts.prompt_ids(tokenizer, turns[k], chat_kwargs) for k in keep}
        else:
            advantages = group_advantages(np.array(correct, dtype=np.float64), n, hp["scale_rewards"])

        n_tokens = sum(len(comp_ids[k]) for k in keep)
        micros = [keep[i : i + hp["micro_batch_size"]] for i in range(0, len(keep), hp["micro_batch_size"])]
        old_logp = {}  # GRPO: log-probs of the sampling policy, fixed across the updates of this batch
        model.train()
        for update in range(1 if method == "onpolicy" else hp["updates_per_batch"]):
            opt.zero_grad(set_to_none=True)
            loss_sum, div_sum = 0.0, 0.0
            for m, (micro, weight) in enumerate(distributed.my_share(micros)):
                logits, mask, ids = completion_logits(model, [stu_ids[k] for k in micro], [comp_ids[k] for k in micro], pad)
                if method == "onpolicy":
                    t_args = [tea_ids[k] for k in micro], [comp_ids[k] for k in micro]
                    target = teacher.sparse(*t_args, hp["topk"]) if teacher.scorer else teacher.logits(*t_args, pad)
                    per_token, div = distill_token_loss(logits, target, ids, in_e_vocab, hp, ablation)
                else:
                    new_logp = sampled_logp(logits, ids, hp["temperature"])
                    old_logp.setdefault(m, new_logp.detach())
                    adv = torch.tensor(advantages[micro], device=logits.device, dtype=new_logp.dtype)
                    per_token, div = grpo_token_loss(new_logp, old_logp[m], adv, hp), torch.zeros_like(new_logp)
                loss = (per_token * mask).sum()
                # Normalized by the valid tokens of the whole step; x world: ranks' gradients are averaged.
                (loss * (weight * world / max(1, n_tokens))).backward()
                loss_sum += loss.item() * weight
                div_sum += (div * mask).sum().item() * weight
            loss_sum, div_sum = distributed.all_sum(loss_sum), distributed.all_sum(div_sum)
            grad_norm = distributed.full(torch.nn.utils.clip_grad_norm_(params, hp["max_grad_norm"])).item() if keep else 0.0
            require_finite(step, loss=loss_sum, grad_norm=grad_norm)
            if keep:
                opt.step()
        if teacher:
            teacher.update()

        counts = [epistemic.substring_count(t) for t in texts]
        log_rows.append(
            {
                "step": step,
                "loss": loss_sum / max(1, n_tokens),
                "reward": float(np.mean(correct)),
                "mean_length": float(np.mean([len(i) for i in comp_ids])),
                "epistemic_count": float(np.mean(counts)),
                "epistemic_words": float(np.mean([epistemic.word_count(t) for t in texts])),
                "divergence": div_sum / max(1, n_tokens) if method == "onpolicy" else math.nan,
                "grad_norm": grad_norm,
                "masked_fraction": 1 - len(keep) / len(completions),
                "tokens": n_tokens,
            }
        )
        if on_step:
            on_step(log_rows[-1])
        done = step + 1
        if checkpoint_dir and hp["checkpoint_every"] and done % hp["checkpoint_every"] == 0:
            distributed.save_pretrained(model, Path(checkpoint_dir) / f"step{done}")
        if evaluate and hp["eval_every"] and (done % hp["eval_every"] == 0 or done == hp["steps"]):
            eval_rows.append({"step": done, **evaluate(model)})
        if state_path and hp["checkpoint_every"] and done % hp["checkpoint_every"] == 0:
            ema = teacher.ema if teacher and teacher.mode == "ema" else None
            state.save(state_path, state.capture(model, opt, done, rng, order=order, log_rows=log_rows,
                                                 eval_rows=eval_rows, teacher_ema=ema))
    model.eval()
    return log_rows, eval_rows
