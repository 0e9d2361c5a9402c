"""What each rollout method optimizes: an objective (a subclass of `Objective`) chooses which of a
step's rollouts train and gives their per-token loss; the loop in `selfdistill.train.rollouts`
does everything else. A new method adds its objective here and a line in `make_objective` (its
settings class, registry line and the rest: docs/methods.md, "Adding a method").
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import torch
from peft import PeftModel

from selfdistill import distributed, precision, prompts
from selfdistill.grid import ROLLOUT_METHODS
from selfdistill.settings.methods import GRPOConfig, OnPolicyConfig
from selfdistill.train.batching import completion_hidden, log_softmax, output_head, sampled_logp
from selfdistill.train.losses import ablation_target, generalized_jsd, topk_tail, with_tail

SAMPLED_LOGP_FLOOR = -20.0


class Objective:
    """What a rollout method optimizes. The loop calls, per sampled batch: `prepare`, then per
    micro-batch `micro_context` and per chunk of completion positions `token_loss`, then
    `after_step` once the batch's optimizer steps are done."""

    updates_per_batch = 1  # passes over the batch's mini-batches, one optimizer step each
    needs_old_logp = False  # token_loss needs the sampled tokens' log-probs before the batch's updates

    def prepare(self, rows, completions, correct) -> list[int]:
        """The indices of the rollouts that train this step (rows: the step's problems)."""
        raise NotImplementedError

    def micro_context(self, micro: list[int]):
        """What the loss needs for a micro-batch of rollouts (the teacher's hidden states, advantages)."""
        raise NotImplementedError

    def token_loss(self, logits, ids, context, old_logp, positions: slice):
        """(per-token loss [B, L], per-token divergence or None) of one chunk of completion positions;
        old_logp: the sampled tokens' log-probs under the weights the batch was sampled with."""
        raise NotImplementedError

    def step_log(self) -> dict:
        """Per-step values for the training log, beside the loop's own."""
        return {}

    def after_step(self) -> None:
        pass

    def shard(self) -> None:
        """Follow the student onto its shards (several training ranks)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


# ---- self-distillation (SDPO-style) -----------------------------------------------------------


def distill_token_loss(student_logits, teacher, ids, in_e_vocab, hp: OnPolicyConfig, ablation: str):
    """Per-token loss and divergence [B, L] of the student to the (ablated) teacher target.

    teacher: logits [B, L, V], or (top-k ids, their log-probs) [B, L, k] from a sparse scorer (vLLM).
    Logits are divided by the sampling temperature: the loss is defined on the distribution the
    rollouts were sampled from. support: full vocabulary, the student's top-k + tail (`topk`), the
    teacher's top-k + tail (`teacher_topk`), or the sampled token.
    """
    s = log_softmax(student_logits, hp.temperature)
    if isinstance(teacher, tuple):
        top, t_top = teacher  # log-probs at temperature 1 (checked in the config)
    else:
        t = log_softmax(teacher, hp.temperature)
        if hp.support == "teacher_topk":
            t_top, top = t.topk(hp.topk, dim=-1)
    in_e = in_e_vocab.expand_as(s)
    if hp.support == "topk":
        s, t, top = topk_tail(s, t, hp.topk)
    elif hp.support == "teacher_topk":
        s, t = with_tail(s.gather(-1, top)), with_tail(t_top.to(s.dtype))
    if hp.support in ("topk", "teacher_topk"):
        in_e = torch.cat([in_e_vocab[top], torch.zeros_like(top[..., :1], dtype=torch.bool)], -1)
    target = ablation_target(t, s, in_e, ablation)
    if hp.support == "sampled":
        # Sampled-token reverse KL: the per-token reward log q̃(y) - log p(y) weights log p(y).
        s_y, t_y = s.gather(-1, ids[..., None])[..., 0], target.gather(-1, ids[..., None])[..., 0]
        # A token the target rules out (suppress, y in E) has log q̃ = -inf: bound its penalty.
        reward = (t_y.clamp(min=SAMPLED_LOGP_FLOOR) - s_y).detach()
        return -reward * s_y, -reward
    div = generalized_jsd(s, target, hp.alpha)
    return div, div.detach()


class Teacher:
    """The context-conditioned scorer: frozen initial model (adapter disabled), an EMA of the
    student's trainable weights, or the live student; always without gradient. It gives its final
    hidden states for a micro-batch (`hidden`) and turns a chunk of them into logits (`head`), so
    its logits, like the student's, exist one chunk at a time."""

    def __init__(self, model, mode: str, ema_rate: float, scorer=None):
        self.model, self.mode, self.rate, self.scorer = model, mode, ema_rate, scorer
        # Without an adapter to disable (full fine-tuning), the frozen teacher is a copy of the initial
        # weights, in the compute dtype (the student's float32 masters would double its memory).
        self.initial = None
        if mode == "frozen" and scorer is None and not isinstance(model, PeftModel):
            self.initial = precision.frozen_copy(model)
        self.ema = self._trainable() if mode == "ema" else None

    def _trainable(self) -> dict:
        return {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}

    @contextmanager
    def _weights(self, names=None):
        """The teacher's weights in place (the EMA's swapped in: all, or those in `names`; or the
        adapter disabled) and eval mode."""
        model = self.initial if self.initial is not None else self.model
        was_training = model.training
        model.eval()
        try:
            if self.mode == "frozen" and self.initial is None:
                with model.disable_adapter():
                    yield model
            elif self.mode == "ema":
                live = self._swap({n: w for n, w in self.ema.items() if names is None or n in names})
                try:
                    yield model
                finally:
                    self._swap(live)
            else:
                yield model
        finally:
            model.train(was_training)

    @torch.no_grad()
    def hidden(self, prompts_ids, completions, pad_id):
        with self._weights() as model, precision.autocast(model):
            return completion_hidden(model, prompts_ids, completions, pad_id)[0]

    @torch.no_grad()
    def head(self, hidden):
        """Logits of a chunk of the teacher's hidden states; an EMA teacher swaps in only the head's
        weights (called once per chunk)."""
        with self._weights(self._head_names()) as model, precision.autocast(model):
            return output_head(model)(hidden)

    def _head_names(self) -> set[str]:
        head = {id(p) for p in output_head(self.model).parameters()}
        return {n for n, p in self.model.named_parameters() if id(p) in head}

    def logits(self, prompts_ids, completions, pad_id):
        """All completion positions' logits at once (tests, small models)."""
        return self.head(self.hidden(prompts_ids, completions, pad_id))

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

    def shard(self):
        """Follow the student onto its shards: the initial copy sharded too, the EMA restarted
        from the (sharded) initial weights."""
        if self.initial is not None:
            distributed.shard(self.initial)
        if self.mode == "ema":
            self.ema = self._trainable()

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

    def state_dict(self) -> dict:
        return {"ema": self.ema} if self.mode == "ema" else {}

    def load_state_dict(self, state: dict) -> None:
        if self.mode == "ema":
            self.ema = state["ema"]


class Distillation(Objective):
    """Minimize a per-token divergence to the teacher (the same model, the context in its prompt)
    on the student's own rollouts, with the uncertainty ablation applied to the teacher's target."""

    def __init__(
        self,
        model,
        tokenizer,
        hp: OnPolicyConfig,
        richness: str,
        ablation: str,
        templates,
        chat_kwargs,
        teacher_scorer=None,
    ):
        from selfdistill import epistemic

        self.tokenizer, self.hp, self.richness, self.ablation = tokenizer, hp, richness, ablation
        self.templates, self.chat_kwargs = templates, chat_kwargs
        self.teacher = Teacher(model, hp.teacher, hp.ema_rate, teacher_scorer)
        self.needs_old_logp = bool(hp.is_clip)
        self.in_e = torch.zeros(len(tokenizer), dtype=torch.bool, device=model.device)
        self.in_e[epistemic.epistemic_token_ids(tokenizer)] = True

    def prepare(self, rows, completions, correct) -> list[int]:
        """The rollouts that train: all but those that need a demonstration and have none (regen).
        Teacher prompts are right-truncated as verl's reprompt (`max_reprompt_len`, truncation right):
        to `teacher_prompt_max_tokens`, and so that prompt + completion fit the model's context (a
        long demonstration must not stop a multi-day run); the step log counts them."""
        turns = teacher_turns(rows, completions, correct, self.richness, self.templates, self.hp.n_rollouts)
        self.completions = [c.token_ids for c in completions]
        context = self.teacher.model.config.max_position_embeddings
        self.teacher_prompts, truncated = {}, 0
        for k, turn in enumerate(turns):
            if turn is None:
                continue
            ids = prompts.prompt_ids(self.tokenizer, turn, self.chat_kwargs)
            limit = context - len(self.completions[k])
            if self.hp.teacher_prompt_max_tokens:
                limit = min(limit, self.hp.teacher_prompt_max_tokens)
            truncated += len(ids) > limit
            self.teacher_prompts[k] = ids[: max(1, limit)]
        self.truncated_fraction = truncated / max(1, len(self.teacher_prompts))
        return sorted(self.teacher_prompts)

    def step_log(self) -> dict:
        return {"teacher_truncated": self.truncated_fraction}

    def micro_context(self, micro: list[int]):
        """The teacher's side of a micro-batch: its hidden states, or a sparse scorer's top-k."""
        args = [self.teacher_prompts[k] for k in micro], [self.completions[k] for k in micro]
        if self.teacher.scorer:
            return self.teacher.sparse(*args, self.hp.topk)
        return self.teacher.hidden(*args, self.tokenizer.pad_token_id)

    def token_loss(self, logits, ids, context, old_logp, positions: slice):
        """Per-token loss and divergence of one chunk of completion positions; with `is_clip`, the
        loss of a rollout sampled before this batch's earlier mini-batch steps is weighted by its
        truncated ratio min(p_now / p_sampled, is_clip), as SDPO's is_clip."""
        if isinstance(context, tuple):  # the sparse scorer's (ids, log-probs) for the micro-batch
            teacher = context[0][:, positions], context[1][:, positions]
        else:
            teacher = self.teacher.head(context[:, positions])
        per_token, divergence = distill_token_loss(logits, teacher, ids, self.in_e, self.hp, self.ablation)
        if self.hp.is_clip:
            ratio = (sampled_logp(logits.detach(), ids, self.hp.temperature) - old_logp).exp()
            per_token = per_token * ratio.clamp(max=self.hp.is_clip)
        return per_token, divergence

    def after_step(self):
        self.teacher.update()

    def shard(self):
        self.teacher.shard()

    def state_dict(self) -> dict:
        return self.teacher.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.teacher.load_state_dict(state)


def teacher_turns(rows, completions, correct, richness, templates, n):
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
            demo = completions[others[0]].text
        turns.append(prompts.teacher_user_turn(templates, richness, row.problem, row.answer, row.solution, demo))
    return turns


# ---- GRPO ---------------------------------------------------------------------------------------


def grpo_token_loss(new_logp, old_logp, advantages, hp: GRPOConfig):
    """Clipped-ratio policy gradient per token, as verl's vanilla policy loss (no KL term): PPO's
    pessimistic max of the plain and the clipped ratio's loss, the ratio clipped to
    [1 - clip_low, 1 + clip_high]; with `clip_ratio_c` (dual clip), a negative advantage's loss is
    also bounded by -A * clip_ratio_c, so a token whose probability grew far past the sampling
    policy's cannot dominate the step."""
    ratio = torch.exp(new_logp - old_logp)
    clipped = ratio.clamp(1 - hp.clip_low, 1 + hp.clip_high)
    adv = advantages[:, None]
    loss = torch.maximum(-ratio * adv, -clipped * adv)
    if hp.clip_ratio_c:
        loss = torch.where(adv < 0, torch.minimum(loss, -adv * hp.clip_ratio_c), loss)
    return loss


def group_advantages(rewards: np.ndarray, n: int, scale: bool) -> np.ndarray:
    """Reward minus its group mean (a group = the n rollouts of one prompt), optionally / std."""
    groups = rewards.reshape(-1, n)
    adv = groups - groups.mean(1, keepdims=True)
    if scale:
        adv = adv / (groups.std(1, keepdims=True) + 1e-4)
    return adv.reshape(-1)


class GRPO(Objective):
    """Group-relative policy gradient on the verifiable reward."""

    needs_old_logp = True  # the ratio's denominator

    def __init__(self, hp: GRPOConfig):
        self.hp = hp
        self.updates_per_batch = hp.updates_per_batch

    def prepare(self, rows, completions, correct) -> list[int]:
        self.advantages = group_advantages(
            np.array(correct, dtype=np.float64), self.hp.n_rollouts, self.hp.scale_rewards
        )
        return list(range(len(completions)))

    def micro_context(self, micro: list[int]):
        return torch.tensor(self.advantages[micro])

    def token_loss(self, logits, ids, advantages, old_logp, positions: slice):
        new_logp = sampled_logp(logits, ids, self.hp.temperature)
        return grpo_token_loss(new_logp, old_logp, advantages.to(logits.device, new_logp.dtype), self.hp), None


def make_objective(
    method: str, model, tokenizer, hp, richness: str, ablation: str, templates, chat_kwargs=None, teacher_scorer=None
):
    """The objective of a rollout method (the one place that maps method names to objectives)."""
    if method == "onpolicy":
        return Distillation(model, tokenizer, hp, richness, ablation, templates, chat_kwargs, teacher_scorer)
    if method == "grpo":
        return GRPO(hp)
    raise ValueError(f"unknown rollout method {method!r}: use one of {', '.join(ROLLOUT_METHODS)}")
