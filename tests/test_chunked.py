"""Losses over completion positions in chunks equal the loss over all positions at once: the same
value and the same gradients (float64), for every support and ablation, GRPO and SFT."""

from dataclasses import replace

import pytest
import torch

from selfdistill import distributed
from selfdistill.backends import Completion
from selfdistill.models import load_model, load_tokenizer
from selfdistill.train.batching import completion_logits, output_head
from selfdistill.train.model import add_lora
from selfdistill.train.objectives import distill_token_loss, make_objective
from selfdistill.train.rollouts import _micro_loss, _sampled_logp_pass, _Step

from configs import LORA, TEMPLATES, rollout_hp
from test_onpolicy import SUBSET

COMPLETIONS = [[11, 12, 13, 14, 15, 16, 17], [18, 19, 20], [21, 22, 23, 24, 25]]  # uneven: padding inside chunks


def student(model_dir):
    torch.manual_seed(0)
    model = add_lora(load_model(model_dir, dtype="float64"), LORA)
    with torch.no_grad():  # a trained adapter (B != 0), so student and teacher differ
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return model, load_tokenizer(model_dir)


def grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def chunked(model, tok, objective, hp, chunk):
    """The training loop's micro-batch loss, through backward_in_chunks."""
    completions = [Completion(0, k, ids, "", "stop") for k, ids in enumerate(COMPLETIONS)]
    keep = objective.prepare(list(SUBSET.itertuples()), completions, [True, False, True])
    student_prompt = tok("Compute 2+3+4. Put the final answer in \\boxed{}.")["input_ids"]
    batch = _Step([student_prompt], completions)
    if objective.needs_old_logp:
        _sampled_logp_pass(model, output_head(model), batch, keep, 2, tok.pad_token_id, hp.temperature, chunk, None)
    model.zero_grad(set_to_none=True)
    loss, div = _micro_loss(model, output_head(model), objective, batch, tok.pad_token_id, chunk, keep, 1.0)
    return loss, div, grads(model), (batch, keep, student_prompt)


@pytest.mark.parametrize("support", ["full", "topk", "teacher_topk", "sampled"])
@pytest.mark.parametrize("ablation", ["standard", "preserve", "suppress"])
def test_chunked_distillation_equals_the_loss_over_all_positions(tiny_model_dir, support, ablation):
    model, tok = student(tiny_model_dir)
    hp = rollout_hp("onpolicy", support=support, topk=12, temperature=0.7, alpha=0.5, n_rollouts=3)
    objective = make_objective("onpolicy", model, tok, hp, "solution", ablation, TEMPLATES)
    results = {chunk: chunked(model, tok, objective, hp, chunk) for chunk in (1, 3, 1000)}
    batch, keep, prompt = results[1000][3]

    # Reference: every position's logits at once (student and teacher), the per-token loss, one backward.
    model.zero_grad(set_to_none=True)
    logits, mask, ids = completion_logits(model, [prompt] * len(keep), [COMPLETIONS[k] for k in keep], tok.pad_token_id)
    teacher_prompts = [objective.teacher_prompts[k] for k in keep]
    teacher = objective.teacher.logits(teacher_prompts, [COMPLETIONS[k] for k in keep], tok.pad_token_id)
    per_token, div = distill_token_loss(logits, teacher, ids, objective.in_e, hp, ablation)
    reference = (per_token * mask).sum()
    reference.backward()
    expected = grads(model)

    for chunk, (loss, divergence, got, _) in results.items():
        assert loss == pytest.approx(reference.item(), rel=1e-10), chunk
        assert divergence == pytest.approx(float((div * mask).sum()), rel=1e-10), chunk
        assert got.keys() == expected.keys()
        for name, grad in expected.items():
            torch.testing.assert_close(got[name], grad, rtol=1e-8, atol=1e-12, msg=f"{name}, chunk {chunk}")


def test_chunked_grpo_equals_the_loss_over_all_positions(tiny_model_dir):
    model, tok = student(tiny_model_dir)
    hp = rollout_hp("grpo", n_rollouts=3, temperature=0.7)
    objective = make_objective("grpo", model, tok, hp, "none", "standard", TEMPLATES)
    results = {chunk: chunked(model, tok, objective, hp, chunk) for chunk in (1, 2, 1000)}
    batch, keep, prompt = results[1000][3]

    # Reference, written out: before any update the ratio is 1, so each token's loss is -A * p / p.detach()
    # (the value -A, the gradient -A * grad log p), over every position at once.
    model.zero_grad(set_to_none=True)
    logits, mask, ids = completion_logits(model, [prompt] * len(keep), [COMPLETIONS[k] for k in keep], tok.pad_token_id)
    logp = torch.log_softmax(logits / hp.temperature, -1).gather(-1, ids[..., None])[..., 0]
    rewards = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    advantages = (rewards - rewards.mean()) / (rewards.std(unbiased=False) + 1e-4)  # scale_rewards: true
    reference = (-advantages[keep, None] * torch.exp(logp - logp.detach()) * mask).sum()
    reference.backward()
    expected = grads(model)
    assert reference.item() != 0
    for chunk, (loss, _, got, _) in results.items():
        assert loss == pytest.approx(reference.item(), rel=1e-10), chunk
        for name, grad in expected.items():
            torch.testing.assert_close(got[name], grad, rtol=1e-8, atol=1e-12, msg=f"{name}, chunk {chunk}")


def test_chunked_sft_equals_the_loss_over_all_positions(tiny_model_dir):
    from selfdistill.train.sft import train_sft

    from configs import sft_hp

    examples = [([5, 6, 7], [8 + i for i in range(3 + k)] + [2]) for k in range(4)]
    hp = sft_hp(lr=1e-2, epochs=1, batch_size=4, micro_batch_size=2, checkpoint_every=0)
    runs = []
    for chunk in (2, 1000):
        model, tok = student(tiny_model_dir)
        rows = train_sft(model, tok, examples, hp, seed=0, loss_chunk=chunk)
        runs.append((rows[0]["loss"], {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}))
    (loss_a, weights_a), (loss_b, weights_b) = runs
    assert loss_a == pytest.approx(loss_b, rel=1e-10)
    for name, weight in weights_b.items():
        torch.testing.assert_close(weights_a[name], weight, rtol=1e-8, atol=1e-12)

    # Reference: the completion tokens' mean NLL from plain forwards of prompt + completion (prompt
    # tokens and the first prediction of the prompt excluded), written out.
    model, _ = student(tiny_model_dir)
    nll, count = 0.0, 0
    with torch.no_grad():
        for prompt, completion in examples:
            logp = torch.log_softmax(model(input_ids=torch.tensor([prompt + completion])).logits[0], -1)
            predicted = logp[len(prompt) - 1 : -1].gather(-1, torch.tensor(completion)[:, None])
            nll, count = nll - predicted.sum().item(), count + len(completion)
    assert loss_a == pytest.approx(nll / count, rel=1e-10)


def test_full_finetuning_head_gets_its_gradient_through_the_chunks(tiny_model_dir):
    """With every weight training (the LM head too, tied to the embeddings here), chunking changes nothing."""
    from selfdistill.train.model import trainable_model

    from configs import TRAINING

    hp = rollout_hp("onpolicy", support="full", temperature=1.0, n_rollouts=3)
    results = []
    for chunk in (2, 1000):
        model = trainable_model(load_model(tiny_model_dir, dtype="float64"), LORA, replace(TRAINING, finetune="full"))
        tok = load_tokenizer(tiny_model_dir)
        with torch.no_grad():
            model.model.layers[0].mlp.up_proj.weight.mul_(1.5)  # the student differs from... itself as teacher
        objective = make_objective(
            "onpolicy", model, tok, replace(hp, teacher="live"), "solution", "standard", TEMPLATES
        )
        results.append(chunked(model, tok, objective, hp, chunk)[:3])
    (loss_a, _, grads_a), (loss_b, _, grads_b) = results
    assert loss_a == pytest.approx(loss_b, rel=1e-10)
    head = "model.embed_tokens.weight"
    assert head in grads_b and grads_b[head].abs().sum() > 0
    for name, grad in grads_b.items():
        torch.testing.assert_close(grads_a[name], grad, rtol=1e-8, atol=1e-12)
    assert distributed.world_size() == 1
