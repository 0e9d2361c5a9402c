"""Numbers of the training code checked against independent computations: float64 numpy references
and hand-computed cases. Each test kills mutants that the rest of the suite let survive
(docs/mutation.md); the docstrings name them."""

import math
import random

import numpy as np
import pytest
import torch

from selfdistill.train.losses import generalized_jsd, topk_tail
from selfdistill.train.objectives import distill_token_loss, group_advantages, grpo_token_loss

from configs import rollout_hp
from test_batching import _tiny_model
from test_losses import _reference


def _logp(shape, seed, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(shape, generator=g, dtype=torch.float64) * scale, -1)


def _np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _np_jsd(p, q, alpha):
    """Generalized JSD of probability arrays: tests/test_losses.py's float64 reference."""
    return _reference(torch.from_numpy(np.log(p)), torch.from_numpy(np.log(q)), alpha)


def _np_restrict(p, ids):
    """p at `ids` (last dim) and one tail bucket with the rest of the mass."""
    top = np.take_along_axis(p, ids, -1)
    return np.concatenate([top, 1 - top.sum(-1, keepdims=True)], -1)


# ---- top-k + tail supports ----------------------------------------------------------------------


def test_topk_tail_restricts_both_distributions_to_the_students_top_k():
    """Kills topk_tail taking the teacher's top-k ids: with k < vocabulary and different tops, the
    support, both restricted distributions and the divergence follow the student's top k."""
    s, t = _logp((3, 4, 30), 20), _logp((3, 4, 30), 21)
    k = 5
    s_k, t_k, ids = topk_tail(s, t, k)
    p, q = s.exp().numpy(), t.exp().numpy()
    student_top = np.argsort(-p, -1)[..., :k]
    assert not np.array_equal(np.sort(student_top, -1), np.sort(np.argsort(-q, -1)[..., :k], -1))
    np.testing.assert_array_equal(ids.numpy(), student_top)
    np.testing.assert_allclose(s_k.exp().numpy(), _np_restrict(p, student_top), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(t_k.exp().numpy(), _np_restrict(q, student_top), rtol=1e-10, atol=1e-14)
    reference = _np_jsd(_np_restrict(p, student_top), _np_restrict(q, student_top), 0.5)
    np.testing.assert_allclose(generalized_jsd(s_k, t_k, 0.5).numpy(), reference, rtol=1e-9)


def test_a_tail_with_no_mass_left_is_floored_at_1e_minus_7():
    """When the top k hold all the mass the tail bucket is log(1 - exp(-1e-7)) (finite, ~-16.1),
    never -inf or NaN; otherwise it is log of the mass left (by hand: 0.3 and 0.6 kept -> 0.1)."""
    from selfdistill.train.losses import with_tail

    everything = _logp((2, 6), 22)
    tail = with_tail(everything)[..., -1]
    np.testing.assert_allclose(tail.numpy(), np.log(-np.expm1(-1e-7)), rtol=1e-6)
    kept = torch.log(torch.tensor([[0.3, 0.6]], dtype=torch.float64))
    np.testing.assert_allclose(with_tail(kept).exp().numpy(), [[0.3, 0.6, 0.1]], rtol=1e-12)


def test_preserve_with_all_of_the_students_mass_on_e_keeps_a_finite_rest():
    """preserve: if the student puts (almost) all its mass on E, the rest of q is rescaled into
    1 - exp(-1e-7) of mass, not into 0 (which would make -inf targets and NaN gradients)."""
    from selfdistill.train.losses import ablation_target

    in_e = torch.tensor([True, True, False, False])
    student = torch.log(torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=torch.float64))
    teacher = torch.log(torch.tensor([0.1, 0.1, 0.2, 0.6], dtype=torch.float64))
    target = ablation_target(teacher, student, in_e, "preserve")
    rest = -np.expm1(-1e-7)
    np.testing.assert_allclose(target.exp().numpy(), [0.5, 0.5, 0.25 * rest, 0.75 * rest], rtol=1e-6)


@pytest.mark.parametrize("support", ["full", "topk", "teacher_topk"])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_distill_token_loss_is_the_divergence_at_the_sampling_temperature(support, alpha):
    """The loss of logits / T on each support against a numpy reference (temperature 0.7, k = 6 of 25)."""
    g = torch.Generator().manual_seed(3)
    student, teacher = torch.randn(2, 3, 25, generator=g, dtype=torch.float64), torch.randn(2, 3, 25, generator=g)
    teacher = (teacher * 2).double()
    ids, in_e = torch.zeros(2, 3, dtype=torch.long), torch.zeros(25, dtype=torch.bool)
    hp = rollout_hp("onpolicy", temperature=0.7, support=support, topk=6, alpha=alpha)
    per_token, divergence = distill_token_loss(student, teacher, ids, in_e, hp, "standard")
    p = np.exp(_np_log_softmax(student.numpy() / 0.7))
    q = np.exp(_np_log_softmax(teacher.numpy() / 0.7))
    if support != "full":
        top = np.argsort(-(p if support == "topk" else q), -1)[..., :6]
        p, q = _np_restrict(p, top), _np_restrict(q, top)
    np.testing.assert_allclose(per_token.numpy(), _np_jsd(p, q, alpha), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(divergence.numpy(), per_token.numpy())


def test_sampled_token_loss_weights_log_p_by_the_detached_log_ratio():
    """Sampled support: loss = -(log q(y) - log p(y)) * log p(y) with the ratio detached, divergence
    log p(y) - log q(y), at temperature 0.5; its gradient is the reward times the score."""
    g = torch.Generator().manual_seed(4)
    student = torch.randn(2, 4, 15, generator=g, dtype=torch.float64).requires_grad_(True)
    teacher = torch.randn(2, 4, 15, generator=g, dtype=torch.float64)
    ids = torch.randint(0, 15, (2, 4), generator=g)
    hp = rollout_hp("onpolicy", temperature=0.5, support="sampled")
    per_token, divergence = distill_token_loss(student, teacher, ids, torch.zeros(15, dtype=torch.bool), hp, "standard")
    log_p = np.take_along_axis(_np_log_softmax(student.detach().numpy() / 0.5), ids.numpy()[..., None], -1)[..., 0]
    log_q = np.take_along_axis(_np_log_softmax(teacher.numpy() / 0.5), ids.numpy()[..., None], -1)[..., 0]
    np.testing.assert_allclose(per_token.detach().numpy(), -(log_q - log_p) * log_p, rtol=1e-10)
    np.testing.assert_allclose(divergence.numpy(), log_p - log_q, rtol=1e-10)
    per_token.sum().backward()
    x = student.detach().requires_grad_(True)
    reward = torch.tensor(log_q - log_p)  # a constant: no gradient flows through the teacher's reward
    (-reward * torch.log_softmax(x / 0.5, -1).gather(-1, ids[..., None])[..., 0]).sum().backward()
    torch.testing.assert_close(student.grad, x.grad, rtol=1e-9, atol=1e-12)


# ---- the on-policy loss's truncated importance weights -----------------------------------------


def test_is_clip_weights_each_token_by_its_ratio_truncated_at_is_clip(tiny_model_dir):
    """Kills the is_clip weights without their clamp: ratios p_now / p_sampled (at the sampling
    temperature 0.7) of 0.5, 1.5, 3 and 5 weigh the per-token loss by 0.5, 1.5, 2 and 2 (is_clip = 2);
    the teacher's logits are its LM head on its hidden states, the support the student's top 8 + tail."""
    from selfdistill.models import load_model, load_tokenizer
    from selfdistill.train.objectives import make_objective

    from configs import TEMPLATES

    model, tok = load_model(tiny_model_dir, dtype="float64"), load_tokenizer(tiny_model_dir)
    vocab, width = len(tok), model.config.hidden_size
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(1, 4, vocab, generator=g, dtype=torch.float64)
    ids = torch.randint(0, vocab, (1, 4), generator=g)
    hidden = torch.randn(1, 4, width, generator=g, dtype=torch.float64)
    ratios = np.array([0.5, 1.5, 3.0, 5.0])
    now = np.take_along_axis(_np_log_softmax(logits.numpy() / 0.7), ids.numpy()[..., None], -1)[..., 0]
    hp = rollout_hp("onpolicy", temperature=0.7, support="topk", topk=8, alpha=0.5, is_clip=2.0)
    objective = make_objective("onpolicy", model, tok, hp, "solution", "standard", TEMPLATES)
    assert objective.needs_old_logp
    old = torch.tensor(now - np.log(ratios))
    per_token, divergence = objective.token_loss(logits, ids, hidden, old, slice(0, 4))

    head = model.get_output_embeddings().weight.detach().numpy()
    p = np.exp(_np_log_softmax(logits.numpy() / 0.7))
    q = np.exp(_np_log_softmax(hidden.numpy() @ head.T / 0.7))
    top = np.argsort(-p, -1)[..., :8]
    unweighted = _np_jsd(_np_restrict(p, top), _np_restrict(q, top), 0.5)
    np.testing.assert_allclose(divergence.numpy(), unweighted, rtol=1e-9)
    np.testing.assert_allclose(per_token.detach().numpy(), unweighted * np.minimum(ratios, 2.0), rtol=1e-9)


def test_a_sparse_teachers_top_k_is_sliced_to_the_chunks_positions(tiny_model_dir):
    """A vLLM teacher's (ids, log-probs) for the micro-batch: the chunk of positions 1-2 is scored
    against the teacher's top k at those positions (numpy reference on the teacher's support)."""
    from selfdistill.models import load_model, load_tokenizer
    from selfdistill.train.objectives import make_objective

    from configs import TEMPLATES

    model, tok = load_model(tiny_model_dir, dtype="float64"), load_tokenizer(tiny_model_dir)
    vocab, k = len(tok), 6
    g = torch.Generator().manual_seed(14)
    logits = torch.randn(2, 2, vocab, generator=g, dtype=torch.float64)  # the chunk's student logits
    teacher_logp = torch.log_softmax(torch.randn(2, 4, vocab, generator=g, dtype=torch.float64) * 2, -1)
    top_logp, top_ids = teacher_logp.topk(k, -1)
    hp = rollout_hp("onpolicy", temperature=1.0, support="teacher_topk", topk=k, alpha=0.5)
    objective = make_objective("onpolicy", model, tok, hp, "solution", "standard", TEMPLATES)
    # vLLM returns float32 log-probs: the loss takes them up to the student's float64 before the tail.
    per_token, _ = objective.token_loss(
        logits, torch.zeros(2, 2, dtype=torch.long), (top_ids, top_logp.float()), None, slice(1, 3)
    )
    p = np.exp(_np_log_softmax(logits.numpy()))
    top = top_ids.numpy()[:, 1:3]
    q = np.zeros_like(p)  # the teacher's float32 top-k, its tail the rest of the mass (float64)
    np.put_along_axis(q, top, np.exp(top_logp.float().double().numpy()[:, 1:3]), -1)
    np.testing.assert_allclose(per_token.numpy(), _np_jsd(_np_restrict(p, top), _np_restrict(q, top), 0.5), rtol=1e-12)


# ---- GRPO ---------------------------------------------------------------------------------------


def test_grpo_clips_the_ratio_asymmetrically_for_either_sign_of_the_advantage():
    """Kills the ratio clipped to [1 - clip_high, 1 + clip_high] (clip_low ignored) and the swapped
    bounds: -min(r A, clip(r, 1 - 0.2, 1 + 0.28) A), ratios 0.5 to 2.5, advantages +1, -1, +0.5, -2."""
    hp = rollout_hp("grpo", clip_low=0.2, clip_high=0.28)
    ratios = np.array([0.5, 0.75, 0.79, 0.81, 1.0, 1.2, 1.27, 1.29, 1.6, 2.5])
    advantages = np.array([1.0, -1.0, 0.5, -2.0])
    old = torch.log(torch.rand(4, len(ratios), generator=torch.Generator().manual_seed(6), dtype=torch.float64))
    new = old + torch.log(torch.tensor(ratios))[None]
    loss = grpo_token_loss(new, old, torch.tensor(advantages), hp).numpy()
    r, a = ratios[None], advantages[:, None]
    expected = -np.minimum(r * a, np.clip(r, 0.8, 1.28) * a)
    np.testing.assert_allclose(loss, expected, rtol=1e-12)
    # By hand: a negative advantage at ratio 0.5 is held at the low bound: 0.8 (clip_high's 0.72 would differ).
    assert loss[1, 0] == pytest.approx(0.8) and loss[0, -1] == pytest.approx(-1.28)


def test_grpo_objective_loss_uses_the_sampled_tokens_log_probs_at_the_temperature():
    """GRPO.token_loss on logits / 0.5 against numpy: on-policy (old = new) the per-token loss is -A."""
    from selfdistill.train.objectives import GRPO

    g = torch.Generator().manual_seed(7)
    logits = torch.randn(2, 3, 11, generator=g, dtype=torch.float64)
    ids = torch.randint(0, 11, (2, 3), generator=g)
    log_p = np.take_along_axis(_np_log_softmax(logits.numpy() / 0.5), ids.numpy()[..., None], -1)[..., 0]
    objective = GRPO(rollout_hp("grpo", temperature=0.5, clip_low=0.2, clip_high=0.28))
    advantages = torch.tensor([0.7, -1.3], dtype=torch.float64)
    per_token, divergence = objective.token_loss(logits, ids, advantages, torch.tensor(log_p), slice(0, 3))
    assert divergence is None
    np.testing.assert_allclose(per_token.numpy(), -advantages.numpy()[:, None].repeat(3, 1), rtol=1e-12)
    shifted = objective.token_loss(logits, ids, advantages, torch.tensor(log_p - np.log(1.1)), slice(0, 3))[0]
    np.testing.assert_allclose(shifted.numpy(), -1.1 * advantages.numpy()[:, None].repeat(3, 1), rtol=1e-12)
    # float32 logits (a float32 model): the loss stays float32 though the advantages come as float64.
    single = objective.token_loss(logits.float(), ids, advantages, torch.tensor(log_p).float(), slice(0, 3))[0]
    assert single.dtype == torch.float32


def test_grpo_prepare_trains_every_rollout_with_its_scaled_group_advantage():
    """GRPO.prepare on rewards [1, 0, 0, 0 | 1, 1, 0, 1] with scale_rewards: all 8 rollouts train, with
    the advantages below (the group's population std is sqrt(3)/4 in both groups)."""
    from selfdistill.train.objectives import GRPO

    objective = GRPO(rollout_hp("grpo", n_rollouts=4, scale_rewards=True))
    correct = [True, False, False, False, True, True, False, True]
    assert objective.prepare([None, None], [None] * 8, correct) == list(range(8))
    scaled = np.array([0.75, -0.25, -0.25, -0.25, 0.25, 0.25, -0.75, 0.25]) / (np.sqrt(3) / 4 + 1e-4)
    np.testing.assert_allclose(objective.advantages, scaled, rtol=1e-12)
    np.testing.assert_allclose(objective.micro_context([6, 0]).numpy(), scaled[[6, 0]], rtol=1e-12)


def test_group_advantages_scaled_by_the_groups_population_std():
    """Groups of 4: reward minus the group mean, over the group's std (ddof 0) + 1e-4; by hand for
    [1, 0, 0, 0]: mean 0.25, std sqrt(3)/4."""
    rewards = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    got = group_advantages(rewards, n=4, scale=True)
    std = np.sqrt(3) / 4
    np.testing.assert_allclose(got[:4], np.array([0.75, -0.25, -0.25, -0.25]) / (std + 1e-4), rtol=1e-12)
    np.testing.assert_allclose(got[4:], np.array([0.25, 0.25, -0.75, 0.25]) / (std + 1e-4), rtol=1e-12)
    np.testing.assert_allclose(group_advantages(rewards, n=2, scale=False), [0.5, -0.5, 0, 0, 0, 0, -0.5, 0.5])


# ---- one optimizer step over micro-batches ------------------------------------------------------


def _quadratic_micro_loss(w, data):
    """micro_loss for accumulate_and_step: sum over the micro-batch's items of (w . x - y)^2, x scale."""

    def micro_loss(micro, scale):
        loss = sum(((w * data[i][0]).sum() - data[i][1]) ** 2 for i in micro)
        (loss * scale).backward()
        return loss.item(), float(len(micro))

    return micro_loss


@pytest.mark.parametrize("max_grad_norm", [100.0, 0.5])
def test_accumulate_and_step_takes_the_token_mean_gradient_step(max_grad_norm):
    """SGD (lr 1) on three items in micro-batches [0, 1], [2], normalized by n_tokens = 4: the step is
    minus the summed gradient / 4, clipped to max_grad_norm; the sums and the pre-clip norm come back."""
    from selfdistill.train.step import accumulate_and_step

    data = [(np.array([1.0, 2.0]), 1.0), (np.array([0.5, -1.0]), 2.0), (np.array([3.0, 0.0]), -1.0)]
    w0 = np.array([0.3, -0.2])
    w = torch.tensor(w0, requires_grad=True)
    data_t = [(torch.tensor(x), y) for x, y in data]
    opt = torch.optim.SGD([w], lr=1.0)
    stats = accumulate_and_step([w], opt, [[0, 1], [2]], _quadratic_micro_loss(w, data_t), 4, max_grad_norm, step=0)
    loss, extra, norm = stats.loss, stats.extra, stats.grad_norm
    residuals = [x @ w0 - y for x, y in data]
    grad = sum(2 * r * x for r, (x, _) in zip(residuals, data, strict=True)) / 4
    assert loss == pytest.approx(sum(r**2 for r in residuals), rel=1e-12)
    assert extra == 3.0 and norm == pytest.approx(np.linalg.norm(grad), rel=1e-12)
    step = grad * min(1.0, max_grad_norm / (np.linalg.norm(grad) + 1e-6))
    np.testing.assert_allclose(w.detach().numpy(), w0 - step, rtol=1e-9)
    assert w.grad is None  # freed for the next rollouts


def test_accumulate_and_step_of_a_single_token_is_its_whole_gradient():
    """n_tokens = 1: the step is the item's gradient itself, 2 (w . x - y) x, by hand."""
    from selfdistill.train.step import accumulate_and_step

    w = torch.tensor([0.5, 0.5], dtype=torch.float64, requires_grad=True)
    data = [(torch.tensor([1.0, 1.0], dtype=torch.float64), 0.0)]  # residual 1, gradient [2, 2]
    norm = accumulate_and_step(
        [w], torch.optim.SGD([w], lr=0.1), [[0]], _quadratic_micro_loss(w, data), 1, 100.0, 0
    ).grad_norm
    assert norm == pytest.approx(np.sqrt(8)) and w.tolist() == pytest.approx([0.3, 0.3])


def test_accumulate_and_step_without_micro_batches_does_not_step():
    from selfdistill.train.step import accumulate_and_step

    w = torch.tensor([1.0, 2.0], requires_grad=True)
    stats = accumulate_and_step([w], torch.optim.SGD([w], lr=1.0), [], None, 0, 1.0, step=0)
    assert (stats.loss, stats.extra, stats.grad_norm) == (0.0, 0.0, 0.0)
    assert w.tolist() == [1.0, 2.0]


@pytest.mark.parametrize("chunk", [1, 2, 5])
def test_backward_in_chunks_gives_the_gradient_of_the_scaled_whole(chunk):
    """hidden = x @ W over 5 positions, loss = sum(hidden^2) and extra = sum(hidden), chunk by chunk:
    dW = 2 x^T hidden * scale (by hand), and the sums are those of all positions."""
    from selfdistill.train.step import backward_in_chunks

    g = torch.Generator().manual_seed(8)
    x = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    weight = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    hidden = x @ weight
    loss, extra = backward_in_chunks(hidden, lambda h, pos: ((h**2).sum(), h.sum()), chunk, scale=0.25)
    h = (x @ weight).detach()
    assert loss == pytest.approx(float((h**2).sum()), rel=1e-12) and extra == pytest.approx(float(h.sum()), rel=1e-12)
    expected = 0.25 * 2 * torch.einsum("bpi,bpj->ij", x, h)
    torch.testing.assert_close(weight.grad, expected, rtol=1e-12, atol=1e-12)
    # Without a gradient to carry (evaluation), the sums alone.
    frozen = backward_in_chunks(h, lambda h, pos: ((h**2).sum(), h.sum()), chunk, scale=0.25)
    assert frozen == pytest.approx((loss, extra), rel=1e-12)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_require_finite_stops_at_a_non_finite_value_only(bad):
    from selfdistill.train.step import require_finite

    require_finite(3, loss=1.0, grad_norm=0.0)
    with pytest.raises(FloatingPointError, match=rf"^step 3: grad_norm = {bad}; training stops before the weights"):
        require_finite(3, loss=1.0, grad_norm=bad)
    with pytest.raises(FloatingPointError) as raised:
        require_finite(3, loss=bad, grad_norm=bad)
    assert str(raised.value).startswith(f"step 3: loss = {bad}, grad_norm = {bad}; training stops")
    assert "Likely causes: a teacher target with zero probability where the student has some (reverse KL," in str(
        raised.value
    ) and str(raised.value).endswith("a learning rate that diverges, or float16 overflow (use bfloat16 or float32)")


def test_a_non_finite_gradient_with_a_finite_loss_stops_the_step():
    from selfdistill.train.step import accumulate_and_step

    w = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)

    def micro_loss(micro, scale):
        (w * 1e308 * 1e308).sum().backward()  # an infinite gradient
        return 1.0, 0.0

    with pytest.raises(FloatingPointError, match=r"^step 7: grad_norm = inf;"):
        accumulate_and_step([w], torch.optim.SGD([w], lr=1.0), [[0]], micro_loss, 1, 1.0, 7)
    assert w.tolist() == [1.0, 2.0]


# ---- SFT: completion-only NLL, normalized by the step's completion tokens ----------------------


def _float64_student(model_dir):
    from selfdistill.models import load_model, load_tokenizer
    from selfdistill.train.model import add_lora

    from configs import LORA

    torch.manual_seed(0)
    model = add_lora(load_model(model_dir, dtype="float64"), LORA)
    with torch.no_grad():  # a trained adapter, so its weights get a gradient of their own
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return model, load_tokenizer(model_dir)


def _completion_nll_and_grads(model, examples):
    """Mean NLL of the completion tokens only (prompts unscored), by a direct forward per example,
    its gradient over the trainable weights, and the token count."""
    params = [p for p in model.parameters() if p.requires_grad]
    total, count = 0.0, 0
    for prompt, completion in examples:
        logp = torch.log_softmax(model(input_ids=torch.tensor([prompt + completion])).logits[0], -1)
        for i, token in enumerate(completion):
            total = total - logp[len(prompt) - 1 + i, token]
            count += 1
    mean = total / count
    return mean.item(), torch.autograd.grad(mean, params), count


def test_sft_loss_is_the_completion_only_nll_over_the_steps_tokens(tiny_model_dir):
    """Kills SFT training on prompt tokens (labels not masked) and any other normalization: the first
    step's logged loss and gradient norm equal the directly computed mean completion NLL (float64) and
    its gradient's norm, over 5 examples of uneven lengths in micro-batches of 2; the weights then take
    AdamW's first step by hand: w (1 - lr wd) - lr g / (|g| + eps)."""
    from selfdistill.train.sft import train_sft

    from configs import sft_hp

    model, tok = _float64_student(tiny_model_dir)
    examples = [
        ([5, 6, 7, 8][: 2 + k % 3], [9 + k, 20, 21 + 2 * k][: 1 + k % 3] + [tok.eos_token_id]) for k in range(5)
    ]
    loss, grads, count = _completion_nll_and_grads(model, examples)
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    hp = sft_hp(lr=2e-3, epochs=1, batch_size=5, micro_batch_size=2, max_grad_norm=1e6, checkpoint_every=0)
    rows = train_sft(model, tok, examples, hp, seed=0, loss_chunk=2)
    assert rows[0]["tokens"] == count
    assert rows[0]["loss"] == pytest.approx(loss, rel=1e-9)
    assert rows[0]["grad_norm"] == pytest.approx(torch.sqrt(sum((g**2).sum() for g in grads)).item(), rel=1e-7)
    decay = getattr(hp, "weight_decay", 0.0)
    after = [p.detach() for p in model.parameters() if p.requires_grad]
    for w0, g, w1 in zip(before, grads, after, strict=True):
        torch.testing.assert_close(w1, w0 * (1 - 2e-3 * decay) - 2e-3 * g / (g.abs() + 1e-8), rtol=1e-6, atol=1e-9)


def test_sft_schedule_covers_each_epoch_with_a_linearly_decaying_learning_rate(tiny_model_dir):
    """6 examples, batches of 3, 2 epochs: 4 steps, epochs [0, 0, 1, 1], lr 2e-3 x (1 - s / 4), each
    step on the next 3 examples of the seed's shuffle of the epoch."""
    from selfdistill.train.sft import train_sft

    from configs import sft_hp

    model, tok = _float64_student(tiny_model_dir)
    examples = [([5, 6], [10 + k] * (1 + k)) for k in range(6)]  # example k has k + 1 completion tokens
    hp = sft_hp(lr=2e-3, epochs=2, batch_size=3, micro_batch_size=2, checkpoint_every=1)  # no state_path: nothing saved
    rows = train_sft(model, tok, examples, hp, seed=1, loss_chunk=4)
    assert [r["step"] for r in rows] == [0, 1, 2, 3] and [r["epoch"] for r in rows] == [0, 0, 1, 1]
    assert [r["lr"] for r in rows] == pytest.approx([2e-3, 1.5e-3, 1e-3, 5e-4])
    # The seed's shuffle of each epoch, cut into batches of 3: example k has k + 1 tokens.
    rng, expected = random.Random(1), []
    for _ in range(2):
        order = list(range(6))
        rng.shuffle(order)
        expected += [sum(k + 1 for k in order[:3]), sum(k + 1 for k in order[3:])]
    assert [r["tokens"] for r in rows] == expected


def test_sft_examples_cycle_through_a_problems_kept_traces_by_repeat(toy_tokenizer_dir):
    """The k-th repeat of a problem trains on its (k mod n)-th trace, its ids as stored; an uncovered
    problem is named and skipped, not the end; the chat settings reach the student prompt."""
    import pandas as pd
    from transformers import AutoTokenizer

    from selfdistill.train.sft import sft_examples

    tok = AutoTokenizer.from_pretrained(toy_tokenizer_dir)
    # A template that shows its chat setting, so the test sees whether the setting reached it.
    tok.chat_template = "{{ messages[0]['content'] }}{% if enable_thinking %} <think>{% endif %}"
    traces = pd.DataFrame({"problem_id": ["a", "b", "a"], "token_ids": [[1, 2], [4, 5, 6], [3]]})
    subset = pd.DataFrame(
        {
            "problem_id": ["a", "c", "a", "b", "a"],
            "problem": ["1+2", "5+6", "1+2", "3+4", "1+2"],
            "repeat": [0, 0, 1, 0, 2],
        }
    )
    examples, uncovered = sft_examples(subset, traces, tok, "{problem}", {"enable_thinking": True})
    assert [c for _, c in examples] == [[1, 2], [3], [4, 5, 6], [1, 2]] and uncovered == ["c"]
    assert tok.decode(examples[2][0]) == "3+4 <think>"


def test_pretraining_gradient_is_that_of_the_mean_nll_over_trained_tokens():
    """pretraining_loss back-propagates the mean NLL over trained tokens (not the sum, not a
    per-micro-batch mean): its gradient equals that of a direct float64 computation."""
    from selfdistill.toy_model import pretraining_loss

    model = _tiny_model().double()
    examples = [
        ([3, 4, 5, 6], [7, 2], [True, True]),
        ([3, 5, 7], [9, 8, 1, 2], [True, False, False, True]),
        ([3, 5], [6, 6, 6, 6, 6, 2], [True] * 6),
        ([4], [5, 2], [True, True]),  # a one-token prompt: its first response token is at position 1
    ]
    total, count = 0.0, 0
    for prompt, response, trained in examples:
        logp = torch.log_softmax(model(torch.tensor([prompt + response])).logits[0], -1)
        for i, (token, keep) in enumerate(zip(response, trained, strict=True)):
            if keep:
                total = total - logp[len(prompt) - 1 + i, token]
                count += 1
    expected = torch.autograd.grad(total / count, list(model.parameters()))
    model.zero_grad()
    nll_sum, n_tokens = pretraining_loss(model, examples, pad_id=0, micro_batch_size=2)
    assert n_tokens == count == 12 and nll_sum == pytest.approx(total.item(), rel=1e-6)  # float32 softmax
    for p, e in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, e, rtol=1e-5, atol=1e-8)


# ---- coverage subsets ---------------------------------------------------------------------------


def _problems(n_train=10):
    import pandas as pd

    ids = [f"p{i:02d}" for i in range(n_train + 2)]
    return pd.DataFrame(
        {
            "problem_id": ids,
            "problem": [f"q{i}" for i in range(n_train + 2)],
            "answer": [str(i) for i in range(n_train + 2)],
            "split": ["train"] * n_train + ["test"] * 2,
        }
    )


def test_coverage_subset_repeats_the_seeds_first_problems_and_numbers_the_repeats():
    """3 problems for a batch of 8: the seed order's first 3, cycled, truncated to 8 rows, `repeat`
    0, 0, 0, 1, 1, 1, 2, 2 (the SFT trace each row takes), the problems' columns plus `repeat`."""
    from selfdistill.data.coverage import coverage_subset, nested_order

    problems = _problems()
    first = nested_order(problems.loc[problems["split"] == "train", "problem_id"], seed=4)[:3]
    subset = coverage_subset(problems, 3, seed=4, batch_size=8)
    assert subset["problem_id"].tolist() == (first * 3)[:8]
    assert subset["repeat"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    assert list(subset.columns) == ["problem_id", "problem", "answer", "split", "repeat"]
    assert subset.index.tolist() == list(range(8))
    everything = coverage_subset(problems, "full", seed=4, batch_size=8)
    assert len(everything) == 10 and everything["repeat"].tolist() == [0] * 10


def test_coverage_beyond_the_training_split_names_the_fix():
    from selfdistill.data.coverage import coverage_subset

    with pytest.raises(ValueError, match=r"coverage 11 exceeds the 10 training problems: lower it in `coverage` or "):
        coverage_subset(_problems(), 11, seed=0, batch_size=8)
    with pytest.raises(ValueError, match=r"or enlarge the training split$"):
        coverage_subset(_problems(), 11, seed=0, batch_size=8)


# ---- batches and token log-probabilities --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.float64])
def test_sampled_logp_is_the_log_softmax_of_logits_over_temperature(dtype):
    """At temperature 0.6 against numpy; bf16 logits are scored in float32 (not bf16), float64 stays."""
    from selfdistill.train.batching import log_softmax, sampled_logp

    g = torch.Generator().manual_seed(9)
    logits = (torch.randn(2, 3, 13, generator=g, dtype=torch.float64) * 3).to(dtype)
    ids = torch.randint(0, 13, (2, 3), generator=g)
    reference = _np_log_softmax(logits.double().numpy() / 0.6)
    got = sampled_logp(logits, ids, 0.6)
    assert got.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert log_softmax(logits).dtype == got.dtype
    rtol = 1e-12 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(
        got.double().numpy(), np.take_along_axis(reference, ids.numpy()[..., None], -1)[..., 0], rtol=rtol
    )
    np.testing.assert_allclose(
        log_softmax(logits).double().numpy(), _np_log_softmax(logits.double().numpy()), rtol=rtol
    )


def test_select_traces_target_falls_back_to_the_median_of_all_unguided_counts():
    """A problem with no correct unguided trace takes the median count of every unguided trace
    (by hand: 1, 5, 7, 9 -> 6); with no unguided traces at all, 0. The report's numbers by hand."""
    import pandas as pd

    from selfdistill.train.sft import select_traces

    teacher = pd.DataFrame(
        {
            "problem_id": ["a", "a", "a", "b", "b"],
            "sample": [0, 1, 2, 0, 1],
            "epistemic_count": [0, 5, 8, 1, 4],
            "n_tokens": [10, 20, 30, 40, 50],
            "kept": [True, True, True, True, False],
        }
    )
    unguided = pd.DataFrame(
        {
            "problem_id": ["a", "a", "b", "b"],
            "epistemic_count": [1, 5, 7, 9],
            "n_tokens": [100, 200, 300, 500],
            "correct": [False, False, False, True],
        }
    )
    selected, report = select_traces(teacher, unguided, "preserve", per_problem=1)
    assert selected["epistemic_count"].tolist() == [5, 1]  # a: |5 - 6| is least; b: its one kept trace
    assert list(selected.columns) == list(teacher.columns)  # no helper column left behind
    row = report.set_index("problem_id").loc["a"]
    assert row["target_epistemic_count"] == 6.0 and row["unguided_mean_tokens"] == 150.0
    assert row["candidates"] == 3 and row["selected"] == 1
    assert row["before_epistemic_count"] == pytest.approx(13 / 3) and row["after_epistemic_count"] == 5
    assert row["before_mean_tokens"] == 20.0 and row["after_mean_tokens"] == 20.0
    assert report.set_index("problem_id").loc["b", "target_epistemic_count"] == 9.0
    _, alone = select_traces(teacher, unguided.iloc[:0], "preserve", per_problem=2)
    assert alone["target_epistemic_count"].tolist() == [0.0, 0.0] and alone["unguided_mean_tokens"].isna().all()
    with pytest.raises(ValueError, match=r"unknown ablation 'keep' for sft: use standard, preserve or suppress"):
        select_traces(teacher, unguided, "keep", per_problem=1)


def test_build_batch_gives_integer_tensors_and_refuses_unpaired_lists():
    """Masks and labels are int64 like a tokenizer's; prompts and completions must pair up."""
    from selfdistill.train.batching import build_batch

    batch = build_batch([[5, 6], [5]], [[7, 2], [2]], pad_id=0)
    assert {k: v.dtype for k, v in batch.items()} == dict.fromkeys(batch, torch.long)
    with pytest.raises(ValueError):
        build_batch([[5, 6], [5]], [[7, 2]], pad_id=0)


def test_sft_resumed_after_an_interruption_ends_as_the_uninterrupted_run(tiny_model_dir, tmp_path):
    """In process: state saved every 3 steps, stopped during step 3 (of 0-3), resumed on a model with
    other initial weights: the state's weights, optimizer and log rows carry on, so the final weights
    and rows equal an uninterrupted run's, and only step 3 runs again."""
    from selfdistill.train.sft import train_sft

    from configs import sft_hp

    examples = [([5, 6], [10 + k] * (1 + k)) for k in range(6)]
    hp = sft_hp(lr=2e-3, epochs=2, batch_size=3, micro_batch_size=2, checkpoint_every=3)
    model, tok = _float64_student(tiny_model_dir)
    uninterrupted = train_sft(model, tok, examples, hp, seed=1, loss_chunk=4)
    expected = [p.detach().clone() for p in model.parameters() if p.requires_grad]

    class Stop(Exception):
        pass

    def stop_in_step_3(row, total):
        if row["step"] == 3:
            raise Stop

    state_path = tmp_path / "state.pt"
    model, tok = _float64_student(tiny_model_dir)
    with pytest.raises(Stop):
        train_sft(model, tok, examples, hp, seed=1, loss_chunk=4, on_step=stop_in_step_3, state_path=state_path)
    model, tok = _float64_student(tiny_model_dir)
    with torch.no_grad():  # other initial weights: only a real resume gets the uninterrupted result
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1)
    ran = []
    rows = train_sft(
        model,
        tok,
        examples,
        hp,
        seed=1,
        loss_chunk=4,
        on_step=lambda r, total: ran.append((r["step"], total)),
        state_path=state_path,
    )
    assert ran == [(3, 4)] and rows == uninterrupted
    for got, want in zip((p for p in model.parameters() if p.requires_grad), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


# ---- the rollout loop's pieces ------------------------------------------------------------------


def _completions(prompt_indices, lengths):
    from selfdistill.backends import Completion

    return [
        Completion(p, k, [11 + (k + i) % 7 for i in range(n)], "", "stop")
        for k, (p, n) in enumerate(zip(prompt_indices, lengths, strict=True))
    ]


def test_mini_batches_group_kept_rollouts_by_prompt():
    """Kept rollouts 0, 1, 2, 3, 5 of prompts 0, 0, 1, 1, 2 in mini-batches of 2 prompts: [0-3], [5]."""
    from selfdistill.train.rollouts import _mini_batches

    completions = _completions([0, 0, 1, 1, 2, 2], [1] * 6)
    assert _mini_batches([0, 1, 2, 3, 5], completions, 2) == [[0, 1, 2, 3], [5]]
    assert _mini_batches([0, 1, 2, 3, 5], completions, 1) == [[0, 1], [2, 3], [5]]
    assert _mini_batches([0, 1, 2, 3, 5], completions, 0) == [[0, 1, 2, 3, 5]]
    assert _mini_batches([], completions, 0) == [] and _mini_batches([], completions, 2) == []


def test_step_chunk_pads_each_rollouts_values_to_the_width():
    from selfdistill.train.rollouts import _Step

    values = {3: torch.tensor([1.0, 2.0, 3.0]), 7: torch.tensor([4.0])}
    got = _Step.chunk(values, [7, 3], slice(1, 3), 4, "cpu")
    assert got.dtype == torch.float64 and got.tolist() == [[0.0, 0.0], [2.0, 3.0]]


def test_rollout_rewards_need_a_correct_answer_and_a_stop():
    from selfdistill.backends import Completion
    from selfdistill.settings.grading import GradingConfig
    from selfdistill.train.rollouts import rollout_rewards

    completions = [
        Completion(0, 0, [1], r"so \boxed{4}", "stop"),
        Completion(0, 1, [1], r"so \boxed{4}", "length"),
        Completion(0, 2, [1], r"so \boxed{5}", "stop"),
    ]
    grading = GradingConfig(workers=1, timeout_s=10, max_answer_chars=100)
    assert rollout_rewards(completions, ["4", "4", "4"], grading) == [True, False, False]


def test_micro_batch_loss_weights_each_valid_token_by_its_importance_weight(tiny_model_dir):
    """GRPO on-policy (ratio 1): each valid token's loss is -A times its engine IS weight, padding
    none; by hand for rewards [1, 0] (advantages +0.5, -0.5) and weights 0.5, 1, 2, ...; GRPO has no
    divergence (NaN)."""
    from selfdistill.models import load_model, load_tokenizer
    from selfdistill.train.batching import output_head
    from selfdistill.train.objectives import GRPO
    from selfdistill.train.rollouts import _micro_loss, _sampled_logp_pass, _Step

    model, tok = load_model(tiny_model_dir, dtype="float64"), load_tokenizer(tiny_model_dir)
    completions = _completions([0, 0], [5, 3])
    objective = GRPO(rollout_hp("grpo", n_rollouts=2, scale_rewards=False, temperature=0.7))
    keep = objective.prepare([None], completions, [True, False])
    batch = _Step([[5, 6, 7]], completions)
    _sampled_logp_pass(model, output_head(model), batch, keep, 2, tok.pad_token_id, 0.7, 2, None)
    batch.is_weight = {0: torch.tensor([0.5, 1.0, 2.0, 1.5, 1.0]), 1: torch.tensor([2.0, 0.25, 1.0])}
    loss, divergence = _micro_loss(model, output_head(model), objective, batch, tok.pad_token_id, 2, keep, 1.0)
    assert loss == pytest.approx(-0.5 * 6.0 + 0.5 * 3.25, rel=1e-9) and np.isnan(divergence)


def test_sft_stops_at_the_first_non_finite_loss_naming_its_step(tiny_model_dir):
    """A learning rate of 1e30 makes step 0's update blow the weights up: step 1's loss is not finite,
    and training stops there, naming step 1, before writing it into the weights."""
    from selfdistill.train.sft import train_sft

    from configs import sft_hp

    model, tok = _float64_student(tiny_model_dir)
    examples = [([5, 6], [10 + k] * (1 + k)) for k in range(4)]
    hp = sft_hp(lr=1e30, epochs=1, batch_size=2, micro_batch_size=2, checkpoint_every=0)
    with pytest.raises(FloatingPointError, match=r"^step 1: loss = nan"):
        train_sft(model, tok, examples, hp, seed=0, loss_chunk=4)


@pytest.mark.parametrize("richness, context", [("answer", "4172"), ("solution", "sol-9981"), ("none", None)])
def test_teacher_turns_carry_each_richness_context(richness, context):
    """Each rollout's teacher turn holds its problem's answer or solution, as the richness says."""
    import pandas as pd

    from selfdistill import prompts
    from selfdistill.train.objectives import teacher_turns

    from configs import TEMPLATES

    rows = list(pd.DataFrame({"problem": ["Compute 1+2."], "answer": ["4172"], "solution": ["sol-9981"]}).itertuples())
    turns = teacher_turns(rows, _completions([0, 0], [1, 1]), [True, False], richness, TEMPLATES, n=2)
    expected = prompts.teacher_user_turn(TEMPLATES, richness, "Compute 1+2.", "4172", "sol-9981")
    assert turns == [expected, expected]
    assert (
        (context in expected) if context else expected == prompts.student_user_turn(TEMPLATES.student, "Compute 1+2.")
    )


def test_update_probe_by_hand():
    """A tensor of 10 entries is read whole; one of 200 at 64 evenly spaced entries from its first to its
    last. 3 of p's entries and both ends of q change: 5 of 74 reads; the update's RMS over the weights'.
    A probe of nothing reads an empty float64 vector; all-zero weights have no ratio."""
    from selfdistill.train.step import UpdateProbe

    p, q = torch.arange(1.0, 11.0), torch.full((200,), 2.0)
    probe = UpdateProbe([p, q])
    before = probe.read()
    p[[0, 4, 9]] += 0.5
    q[[0, 199]] += 1.0
    changed, ratio = UpdateProbe.compare(before, probe.read())
    assert changed == pytest.approx(5 / 74)
    assert ratio == pytest.approx(math.sqrt((3 * 0.25 + 2 * 1.0) / (385.0 + 64 * 4.0)))
    one = torch.tensor([3.0])
    probe = UpdateProbe([one])
    before = probe.read()
    one += 1
    assert UpdateProbe.compare(before, probe.read()) == pytest.approx((1.0, 1 / 3))
    empty = UpdateProbe([]).read()
    assert empty.dtype == torch.float64 and empty.numel() == 0
    zeros = torch.zeros(4)
    assert math.isnan(UpdateProbe.compare(zeros, zeros)[1])


@pytest.mark.parametrize(
    "trained, lr, warns",
    [
        (1, 0.1, True),  # 1 of 8 weights moves: 12.50% < 25%
        (2, 0.1, False),  # 2 of 8: exactly the threshold is not vanishing
        (8, 0.1, False),  # a healthy step
        (1, 0.0, False),  # no learning rate: nothing was meant to move
        (0, 0.1, False),  # no gradient: nothing could move
    ],
)
def test_a_vanishing_update_is_reported_with_its_numbers(trained, lr, warns, caplog):
    """SGD on 8 weights whose loss has a gradient of 1e-3 on the first `trained`: the step's fraction
    changed and update ratio by hand, and the warning exactly when the step moved under 25% of the weights
    while a learning rate and a gradient said it should move."""
    import logging

    from selfdistill.train.step import accumulate_and_step

    w = torch.nn.Parameter(torch.ones(8))
    optimizer = torch.optim.SGD([w], lr=lr)

    def micro_loss(micro, scale):
        loss = 1e-3 * w[:trained].sum()
        (loss * scale).backward()
        return loss.item(), 0.0

    caplog.set_level(logging.WARNING)
    stats = accumulate_and_step([w], optimizer, [0], micro_loss, 1, 1e9, step=7)
    moved = trained if lr else 0
    assert stats.changed == pytest.approx(moved / 8)
    # float32 weights near 1 hold the 1e-4 update to 2e-4 of itself
    assert stats.update_ratio == pytest.approx(math.sqrt(moved * (lr * 1e-3) ** 2 / 8), rel=1e-3)
    assert stats.grad_norm == pytest.approx(1e-3 * math.sqrt(trained))
    if warns:
        (message,) = [r.getMessage() for r in caplog.records]
        assert message == (
            "step 7: the optimizer step changed 12.50% of the sampled trainable weights (update / weight RMS 3.54e-05, "
            "lr 1.00e-01): the update is vanishing. Likely causes: trainable weights in bf16/fp16 (an update of ~lr "
            "rounds to nothing), or a learning rate too small for the weights' precision"
        )
    else:
        assert "vanishing" not in caplog.text


def test_a_step_without_micro_batches_changes_nothing_and_says_so_with_nan():
    from selfdistill.train.step import accumulate_and_step

    w = torch.nn.Parameter(torch.ones(3))
    stats = accumulate_and_step([w], torch.optim.SGD([w], lr=0.1), [], None, 0, 1.0, step=0)
    assert (stats.loss, stats.grad_norm) == (0.0, 0.0) and math.isnan(stats.changed) and math.isnan(stats.update_ratio)


def test_a_micro_batch_without_completion_positions_backpropagates_nothing():
    """A hidden tensor of zero positions (every completion empty): no chunk runs, so no gradient reaches
    the model and the sums are 0, without an error."""
    from selfdistill.train.step import backward_in_chunks

    w = torch.nn.Parameter(torch.ones(3))
    hidden = w * torch.ones(2, 0, 3)
    assert backward_in_chunks(hidden, None, 4, 1.0) == (0.0, 0.0) and w.grad is None
