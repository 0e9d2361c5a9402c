"""The `training` config: full fine-tuning and gradient checkpointing, on the tiny model."""

from dataclasses import replace

import torch
from peft import PeftModel

from selfdistill.backends.hf import HFBackend
from selfdistill.models import is_full_model, load_model, load_tokenizer
from selfdistill.train.batching import completion_logits
from selfdistill.train.model import trainable_model
from selfdistill.train.objectives import Teacher

from configs import LORA, TRAINING, rollout_hp, run_rollouts
from test_onpolicy import SUBSET

FULL = replace(TRAINING, finetune="full")
PROMPTS, COMPLETIONS = [[5, 6, 7, 8], [9, 10]], [[11, 12, 13], [14, 15, 16, 17, 2]]


def _loss_and_grads(model):
    logits, mask, ids = completion_logits(model, PROMPTS, COMPLETIONS, pad_id=0)
    logp = torch.log_softmax(logits.float(), -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    loss = -(logp * mask).sum() / mask.sum()
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(tiny_model_dir):
    results = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = trainable_model(
            load_model(tiny_model_dir), LORA, replace(TRAINING, gradient_checkpointing=checkpointing)
        ).train()
        assert model.base_model.model.is_gradient_checkpointing == checkpointing
        results.append(_loss_and_grads(model))
    (loss, grads), (loss_ckpt, grads_ckpt) = results
    assert abs(loss - loss_ckpt) < 1e-6
    for name, grad in grads.items():
        torch.testing.assert_close(grads_ckpt[name], grad, rtol=1e-5, atol=1e-7)


def test_full_finetuning_trains_every_weight_against_a_frozen_copy(tiny_model_dir, tmp_path):
    model = trainable_model(load_model(tiny_model_dir), LORA, FULL)
    tok = load_tokenizer(tiny_model_dir)
    assert not isinstance(model, PeftModel) and all(p.requires_grad for p in model.parameters())
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    teacher = Teacher(model, "frozen", 0.0)
    before = teacher.logits(PROMPTS, COMPLETIONS, tok.pad_token_id)

    run_rollouts(
        model, tok, SUBSET, "onpolicy", "solution", "standard", rollout_hp("onpolicy", lr=1e-3, steps=2), seed=0
    )
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, initial[n])]
    assert "lm_head.weight" in changed or "model.embed_tokens.weight" in changed
    assert any(".mlp." in n for n in changed)  # not just an adapter
    torch.testing.assert_close(
        teacher.logits(PROMPTS, COMPLETIONS, tok.pad_token_id), before
    )  # still the initial model

    # The training output is the whole model; evaluation loads it in place of the base model.
    model.save_pretrained(tmp_path / "adapter")
    assert is_full_model(tmp_path / "adapter") and not is_full_model(None)
    loaded = HFBackend.load(tiny_model_dir, tmp_path / "adapter").model
    for name, p in loaded.named_parameters():
        torch.testing.assert_close(p, dict(model.named_parameters())[name])


def test_the_adapter_initialization_follows_the_seed(tiny_model_dir):
    """Same seed, same adapter, whatever ran before (a job must reproduce; ranks must agree)."""

    def adapter(seed, noise):
        torch.manual_seed(noise)  # some earlier use of the global RNG
        torch.rand(noise + 1)
        model = trainable_model(load_model(tiny_model_dir), LORA, TRAINING, seed=seed)
        return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    first, again, other = adapter(0, noise=1), adapter(0, noise=2), adapter(1, noise=1)
    for name, weight in first.items():
        torch.testing.assert_close(again[name], weight, rtol=0, atol=0)
    assert any(not torch.equal(other[n], w) for n, w in first.items())
