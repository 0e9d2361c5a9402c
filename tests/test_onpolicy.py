import numpy as np
import pandas as pd
import pytest
import torch

from selfdistill import prompts
from selfdistill.backends import Completion, Sampling
from selfdistill.backends.hf import HFBackend
from selfdistill.models import load_model, load_tokenizer
from selfdistill.train.batching import completion_logits
from selfdistill.train.model import add_lora
from selfdistill.train.objectives import distill_token_loss, group_advantages, teacher_turns

from configs import LORA, TEMPLATES, rollout_hp, run_rollouts

SUBSET = pd.DataFrame(
    [
        {
            "problem_id": "p0",
            "problem": "Compute 2+3+4.",
            "answer": "9",
            "solution": r"<think>2+3=5. 5+4=9.</think> \boxed{9}",
            "repeat": 0,
        }
    ]
)


def _hp(method="onpolicy", **overrides):
    return rollout_hp(method, **overrides)


def _student(model_dir, seed=0):
    torch.manual_seed(seed)
    return add_lora(load_model(model_dir), LORA), load_tokenizer(model_dir)


def _fixed_batch(model, tok, richness="solution"):
    """Rollouts of the initial student, and student/teacher prompt ids for them."""
    row = SUBSET.iloc[0]
    student = prompts.prompt_ids(tok, prompts.student_user_turn(TEMPLATES.student, row.problem))
    teacher = prompts.prompt_ids(
        tok, prompts.teacher_user_turn(TEMPLATES, richness, row.problem, row.answer, row.solution)
    )
    completions = HFBackend(model, tok).generate([student], Sampling(n=6, temperature=1.0, max_new_tokens=12, seed=3))
    return student, teacher, [c.token_ids for c in completions]


def _divergence(model, tok, batch, hp):
    student, teacher, comps = batch
    with torch.no_grad():
        s_logits, mask, ids = completion_logits(model, [student] * len(comps), comps, tok.pad_token_id)
        with model.disable_adapter():
            t_logits = completion_logits(model, [teacher] * len(comps), comps, tok.pad_token_id)[0]
    in_e = torch.zeros(len(tok), dtype=torch.bool)
    _, div = distill_token_loss(s_logits, t_logits, ids, in_e, hp, "standard")
    return float((div * mask).sum() / mask.sum())


@pytest.mark.parametrize("support", ["full", "topk"])
def test_short_onpolicy_run_decreases_the_divergence_on_its_batch(tiny_model_dir, support):
    model, tok = _student(tiny_model_dir)
    hp = _hp(lr=1e-3, steps=6, support=support, topk=20)
    batch = _fixed_batch(model, tok)
    before = _divergence(model, tok, batch, hp)
    rows = run_rollouts(model, tok, SUBSET, "onpolicy", "solution", "standard", hp, seed=0)
    after = _divergence(model, tok, batch, hp)
    assert after < 0.7 * before
    assert len(rows) == 6 and {
        "loss",
        "reward",
        "mean_length",
        "epistemic_count",
        "divergence",
        "grad_norm",
        "masked_fraction",
    } <= set(rows[0])


def test_grpo_with_all_equal_rewards_leaves_the_adapter_unchanged(tiny_model_dir):
    model, tok = _student(tiny_model_dir)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    # A random model never answers correctly: every reward is 0, so every advantage is 0.
    rows = run_rollouts(model, tok, SUBSET, "grpo", "none", "standard", _hp("grpo", updates_per_batch=2), seed=0)
    assert all(r["reward"] == 0 for r in rows)
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert torch.equal(p, before[n]), n


def test_grpo_moves_the_adapter_when_rewards_differ(tiny_model_dir, monkeypatch):
    import selfdistill.train.rollouts as rollouts

    model, tok = _student(tiny_model_dir)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    # Grade alternate rollouts correct so that advantages are non-zero.
    monkeypatch.setattr(
        rollouts, "rollout_rewards", lambda completions, *a: [i % 2 == 0 for i in range(len(completions))]
    )
    run_rollouts(model, tok, SUBSET, "grpo", "none", "standard", _hp("grpo", steps=1), seed=0)
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters() if p.requires_grad)


def test_group_advantages():
    adv = group_advantages(np.array([1.0, 0.0, 0.0, 0.0, 1.0, 1.0]), n=3, scale=False)
    np.testing.assert_allclose(adv, [2 / 3, -1 / 3, -1 / 3, -2 / 3, 1 / 3, 1 / 3])
    assert np.all(group_advantages(np.ones(4), n=2, scale=True) == 0)


def test_regen_uses_another_successful_rollout_and_masks_groups_without_one():
    rows = list(SUBSET.itertuples()) * 2
    completions = [Completion(i // 2, i % 2, [1], f"text{i}", "stop") for i in range(4)]
    turns = teacher_turns(rows, completions, [True, True, True, False], "regen", TEMPLATES, n=2)
    assert "text1" in turns[0] and "text0" in turns[1]  # each gets the other successful rollout
    assert "text2" in turns[3] and turns[2] is None  # rollout 2's only partner failed: no demonstration


def test_onpolicy_is_reproducible(tiny_model_dir):
    results = []
    for _ in range(2):
        model, tok = _student(tiny_model_dir)
        rows = run_rollouts(model, tok, SUBSET, "onpolicy", "solution", "preserve", _hp(steps=2, lr=0.01), seed=5)
        results.append(([r["loss"] for r in rows], [p.detach().clone() for p in model.parameters() if p.requires_grad]))
    assert results[0][0] == results[1][0]
    assert all(torch.equal(a, b) for a, b in zip(results[0][1], results[1][1], strict=True))


@pytest.mark.parametrize("teacher, support", [("ema", "full"), ("live", "sampled"), ("frozen", "topk")])
def test_teacher_modes_and_supports_train(tiny_model_dir, teacher, support):
    model, tok = _student(tiny_model_dir)
    hp = _hp(steps=2, lr=1e-3, teacher=teacher, support=support, topk=10, ema_rate=0.5)
    rows = run_rollouts(model, tok, SUBSET, "onpolicy", "solution", "suppress", hp, seed=0)
    assert all(np.isfinite(r["loss"]) and r["grad_norm"] > 0 for r in rows)


def test_a_non_finite_loss_stops_training_before_the_weights_change(tiny_model_dir):
    """α = 1 with `suppress` is reverse KL to a target with no mass on E: infinite. The config check
    refuses it; should such a loss arise anyway, training stops with the reason instead of
    writing NaN parameters and going on."""
    model, tok = _student(tiny_model_dir)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    with pytest.raises(FloatingPointError, match=r"step 0: loss = inf.*training stops before the weights are updated"):
        run_rollouts(model, tok, SUBSET, "onpolicy", "solution", "suppress", _hp(alpha=1.0), seed=0)
    for name, value in model.named_parameters():
        if name in before:
            assert torch.equal(value, before[name]), name


def test_mini_batches_step_once_each_from_the_sampling_policys_log_probs(tiny_model_dir, monkeypatch):
    """verl's ppo_mini_batch_size: 2 prompts in mini-batches of 1 are 2 optimizer steps per batch,
    and the second one's ratio uses the log-probs of the weights the batch was sampled with."""
    import selfdistill.train.rollouts as rollouts

    calls, ratios = [], []
    step = rollouts.accumulate_and_step
    monkeypatch.setattr(rollouts, "accumulate_and_step", lambda *a, **k: calls.append(1) or step(*a, **k))
    monkeypatch.setattr(
        rollouts, "rollout_rewards", lambda completions, *a: [i % 2 == 0 for i in range(len(completions))]
    )
    from selfdistill.train import objectives

    loss = objectives.grpo_token_loss
    monkeypatch.setattr(
        objectives,
        "grpo_token_loss",
        lambda new, old, *a: ratios.append((new - old).abs().max().item()) or loss(new, old, *a),
    )
    model, tok = _student(tiny_model_dir)
    subset = pd.concat(
        [SUBSET, SUBSET.assign(problem_id="p1", problem="Compute 4+4+1.", answer="9")], ignore_index=True
    )
    hp = _hp("grpo", steps=1, prompts_per_step=2, mini_batch_prompts=1, lr=1e-2)
    run_rollouts(model, tok, subset, "grpo", "none", "standard", hp, seed=0)
    assert len(calls) == 2
    assert max(ratios[: len(ratios) // 2]) < 1e-6 < max(ratios[len(ratios) // 2 :])  # first step on-policy, then not


def test_learning_rate_warms_up_linearly(tiny_model_dir):
    model, tok = _student(tiny_model_dir)
    rows = run_rollouts(
        model, tok, SUBSET, "onpolicy", "solution", "standard", _hp(steps=3, warmup_steps=2, lr=1e-3), seed=0
    )
    assert [r["lr"] for r in rows] == pytest.approx([5e-4, 1e-3, 1e-3])


def test_engine_log_probs_give_the_mismatch_and_truncated_importance_weights(tiny_model_dir):
    from selfdistill.settings.training import EngineConfig
    from selfdistill.train.batching import output_head
    from selfdistill.train.rollouts import _sampled_logp_pass, _Step

    model, tok = _student(tiny_model_dir)
    prompt = prompts.prompt_ids(tok, "Compute 2+3+4.")
    completions = HFBackend(model, tok).generate([prompt], Sampling(n=2, temperature=1.0, max_new_tokens=8, seed=1))
    exact = _Step([prompt], completions)
    _sampled_logp_pass(model, output_head(model), exact, [0, 1], 4, tok.pad_token_id, 1.0, 3, None)
    # An engine that puts log(3) less on every token of rollout 0 and the trainer's own on rollout 1.
    engine_logp = [(exact.old_logp[0] - np.log(3)).tolist(), exact.old_logp[1].tolist()]
    completions = [
        Completion(c.prompt_index, c.sample, c.token_ids, c.text, c.finish_reason, lp)
        for c, lp in zip(completions, engine_logp, strict=True)
    ]
    batch = _Step([prompt], completions)
    engine = EngineConfig(
        backend="vllm",
        lora_sync="request",
        gpu_memory_utilization=0.3,
        sleep=True,
        importance_sampling="token",
        is_threshold=2.0,
    )
    _sampled_logp_pass(model, output_head(model), batch, [0, 1], 4, tok.pad_token_id, 1.0, 3, engine)
    n0, n1 = len(completions[0].token_ids), len(completions[1].token_ids)
    assert batch.gap_sum == pytest.approx(n0 * np.log(3)) and batch.outside == n0 and batch.counted == n0 + n1
    assert batch.is_weight[0].tolist() == [2.0] * n0  # ratio 3, truncated at 2
    assert batch.is_weight[1].tolist() == pytest.approx([1.0] * n1)


class PlantedEngine(HFBackend):
    """The student's own samples (transformers), reported with planted engine log-probs: what an
    engine whose numerics (or weights) differ from the trainer's reports."""

    def __init__(self, model, tok, planted: float):
        super().__init__(model, tok, 64)
        self.planted = planted

    def generate(self, prompts, sampling, desc="generate", indices=None):
        from dataclasses import replace

        out = super().generate(prompts, sampling, desc, indices)
        return [replace(c, logprobs=[self.planted] * len(c.token_ids)) for c in out]


@pytest.mark.parametrize("method", ["onpolicy", "grpo"])
def test_importance_weights_multiply_every_tokens_loss(tiny_model_dir, method, monkeypatch):
    """Token-level truncated IS (the paper's rollout_is=token): an engine that gave every token a far
    lower probability than the trainer does makes every weight the threshold 2 (loss and gradient
    double); one that gave a far higher probability makes every weight ~e^-100 (they vanish)."""
    import selfdistill.train.rollouts as loop
    from selfdistill.settings.training import EngineConfig

    # Alternate rollouts graded correct, so that GRPO's advantages (and its loss) are not zero.
    monkeypatch.setattr(loop, "rollout_rewards", lambda completions, *a: [i % 2 == 0 for i in range(len(completions))])

    def first_loss(planted, importance_sampling):
        model, tok = _student(tiny_model_dir)
        engine = EngineConfig(backend="hf", sleep=False, importance_sampling=importance_sampling)
        hp = _hp(method, steps=1, n_rollouts=4)
        rollouts = PlantedEngine(model, tok, planted)
        (row,) = run_rollouts(
            model, tok, SUBSET, method, "solution", "standard", hp, 0, rollouts=rollouts, engine=engine
        )
        return row

    # The gradient scales with the weights (GRPO's loss sums to zero over a group before any update).
    plain = first_loss(0.0, "none")  # the same rollouts, no weights
    doubled, vanished = first_loss(-100.0, "token"), first_loss(100.0, "token")
    assert plain["grad_norm"] > 0
    assert doubled["grad_norm"] == pytest.approx(2 * plain["grad_norm"], rel=1e-6)
    assert doubled["loss"] == pytest.approx(2 * plain["loss"], rel=1e-6, abs=1e-12)
    assert vanished["grad_norm"] < 1e-30 and abs(vanished["loss"]) < 1e-30
    assert plain["engine_logp_gap"] > 1  # the gap is logged whether or not it weights the loss


def test_a_steps_logged_loss_is_the_mean_over_all_its_optimizer_steps(tiny_model_dir, monkeypatch):
    """With several mini-batches per sampled batch, the step's logged loss is the token-weighted mean
    over every optimizer step's loss, not the last mini-batch's (as it once was)."""
    from selfdistill.train import rollouts

    recorded = []  # (summed token loss, tokens) of each optimizer step
    step = rollouts.accumulate_and_step

    def recording(params, opt, micros, micro_loss, n_tokens, *rest):
        stats = step(params, opt, micros, micro_loss, n_tokens, *rest)
        recorded.append((stats.loss, n_tokens))
        return stats

    monkeypatch.setattr(rollouts, "accumulate_and_step", recording)
    model, tok = _student(tiny_model_dir)
    subset = pd.concat(
        [SUBSET, SUBSET.assign(problem_id="p1", problem="Compute 4+4+1+8+9.", answer="26")], ignore_index=True
    )
    hp = _hp("onpolicy", steps=1, prompts_per_step=2, mini_batch_prompts=1)
    (row,) = run_rollouts(model, tok, subset, "onpolicy", "solution", "standard", hp, seed=0)
    assert len(recorded) == 2
    means = [loss / tokens for loss, tokens in recorded]
    assert abs(means[0] - means[1]) > 1e-6  # the two mini-batches differ, so the test can tell them apart
    assert row["loss"] == pytest.approx(sum(loss for loss, _ in recorded) / sum(t for _, t in recorded), rel=1e-9)
