"""Mixed precision: full fine-tuning of a bf16 model keeps float32 masters (an optimizer step of
1e-6 really moves the weights, as a float32 step does), computes in bf16, and exports bf16; the
per-step update probe shows an update that rounds away."""

import logging
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from selfdistill import precision
from selfdistill.backends.vllm import _checkpoint_weights
from selfdistill.distributed import save_pretrained
from selfdistill.models import load_model, load_tokenizer
from selfdistill.train.batching import completion_hidden
from selfdistill.train.model import require_float32_trainable, trainable_model
from selfdistill.train.sft import train_sft

from configs import LORA, TRAINING, sft_hp
from conftest import save_tiny_model

FULL = replace(TRAINING, finetune="full")
# 8 examples, one optimizer step over all of them.
EXAMPLES = [([5 + i, 6, 7], [8 + (i * 7) % 50 for _ in range(4 + i % 3)] + [2]) for i in range(8)]


@pytest.fixture(scope="module")
def realistic_model_dir(toy_tokenizer_dir, tmp_path_factory):
    """The tiny architecture with weights of a real model's scale (std 0.02), saved in float32."""
    arch = {"hidden_size": 64, "intermediate_size": 128, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1}
    return save_tiny_model(toy_tokenizer_dir, tmp_path_factory.mktemp("scale"), {**arch, "max_positions": 64}, 0.02)


def _one_step(model, tok, lr=1e-6, weight_decay=0.0):
    """The weights before and after one SFT optimizer step (float64 copies), and the step's log row."""
    before = {n: p.detach().double().clone() for n, p in model.named_parameters()}
    hp = sft_hp(lr=lr, weight_decay=weight_decay, epochs=1, batch_size=8, micro_batch_size=4, max_grad_norm=1e9)
    (row,) = train_sft(model, tok, EXAMPLES, hp, seed=0, loss_chunk=4)
    after = {n: p.detach().double() for n, p in model.named_parameters()}
    return before, after, row


def _update(before, after):
    return torch.cat([(after[n] - before[n]).flatten() for n in before])


def _relative_error(update, reference):
    return float((update - reference).norm() / reference.norm())


def test_a_bf16_model_trains_float32_masters_that_move_as_a_float32_step(realistic_model_dir, caplog):
    tok = load_tokenizer(realistic_model_dir)
    # The reference: the same (bf16-rounded) weights trained in float32 throughout.
    reference_model = load_model(realistic_model_dir, dtype="bfloat16").float().requires_grad_(True)
    ref_before, ref_after, _ = _one_step(reference_model, tok)
    reference = _update(ref_before, ref_after)

    mixed = trainable_model(load_model(realistic_model_dir, dtype="bfloat16"), LORA, FULL)
    assert {p.dtype for p in mixed.parameters()} == {torch.float32}
    assert precision.compute_dtype(mixed) == torch.bfloat16
    seen = []  # the forward's matmuls compute in bf16 (the residual stream stays float32, as under any autocast)
    hook = mixed.model.layers[0].mlp.down_proj.register_forward_hook(lambda m, args, out: seen.append(out.dtype))
    with precision.autocast(mixed):
        completion_hidden(mixed, [[5, 6, 7]], [[8, 9]], 0)
    hook.remove()
    assert seen == [torch.bfloat16]
    seen.clear()  # and so do the training step's forward and LM head (train_sft's own autocasts)
    hooks = [
        module.register_forward_hook(lambda m, args, out: seen.append(out.dtype))
        for module in (mixed.model.layers[0].mlp.down_proj, mixed.get_output_embeddings())
    ]
    before, after, row = _one_step(mixed, tok)
    for hook in hooks:
        hook.remove()
    assert seen and set(seen) == {torch.bfloat16}
    update = _update(before, after)
    assert _relative_error(update, reference) < 0.1
    assert row["update_changed"] > 0.9  # all but the embedding rows of tokens not in the batch (no gradient)
    weights = torch.cat([w.flatten() for w in before.values()])
    rms = lambda x: float(x.square().mean().sqrt())  # noqa: E731
    assert row["update_ratio"] == pytest.approx(rms(update) / rms(weights), rel=0.5)  # over a sample of weights

    # Negative control: the pure-bf16 step the code used to take (bf16 weights and AdamW state).
    caplog.set_level(logging.WARNING)
    pure = load_model(realistic_model_dir, dtype="bfloat16").requires_grad_(True)
    with pytest.raises(TypeError, match="round to no change"):  # what trainable_model refuses
        require_float32_trainable(pure)
    before, after, row = _one_step(pure, tok)
    assert _relative_error(_update(before, after), reference) > 0.5
    assert row["update_changed"] < 0.2
    assert "the update is vanishing" in caplog.text


def test_weight_decay_is_decoupled_and_applied(realistic_model_dir):
    """AdamW's decay: the step with decay minus the step without is -lr * wd * w, exactly."""
    tok = load_tokenizer(realistic_model_dir)
    lr, wd = 1e-3, 0.1
    runs = []
    for decay in (0.0, wd):
        model = trainable_model(load_model(realistic_model_dir), LORA, FULL)
        runs.append(_one_step(model, tok, lr=lr, weight_decay=decay))
    (before, plain, _), (_, decayed, _) = runs
    for name in before:
        # float32 rounding of the weights (spacing ~2e-9 at 0.02) against a decay term of ~2e-6
        torch.testing.assert_close(decayed[name] - plain[name], -lr * wd * before[name], rtol=1e-2, atol=2e-8)


def test_lora_on_a_bf16_base_trains_a_float32_adapter(realistic_model_dir):
    model = trainable_model(load_model(realistic_model_dir, dtype="bfloat16"), LORA, TRAINING)
    trainable = {p.dtype for p in model.parameters() if p.requires_grad}
    frozen = {p.dtype for p in model.parameters() if not p.requires_grad}
    assert trainable == {torch.float32} and frozen == {torch.bfloat16}
    assert not precision.has_masters(model)  # PEFT casts its own adapter path; no autocast needed


def test_what_leaves_training_is_in_the_compute_dtype(realistic_model_dir, tmp_path):
    model = trainable_model(load_model(realistic_model_dir, dtype="bfloat16"), LORA, FULL)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1e-6)  # a master update below bf16's spacing: exported as the rounded value
    exported = dict(_checkpoint_weights(model))
    assert {w.dtype for w in exported.values()} == {torch.bfloat16}
    for name, p in model.named_parameters():
        torch.testing.assert_close(exported[name], p.detach().to(torch.bfloat16), rtol=0, atol=0)
    save_pretrained(model, tmp_path / "saved")
    saved = load_file(next((tmp_path / "saved").glob("*.safetensors")))
    assert {w.dtype for w in saved.values()} == {torch.bfloat16}
    name = "model.layers.0.mlp.up_proj.weight"
    torch.testing.assert_close(saved[name], exported[name], rtol=0, atol=0)


def test_frozen_copy_is_independent_in_the_compute_dtype_and_keeps_ties(realistic_model_dir):
    model = trainable_model(load_model(realistic_model_dir, dtype="bfloat16"), LORA, FULL)
    copy = precision.frozen_copy(model)
    assert {p.dtype for p in copy.parameters()} == {torch.bfloat16}
    assert not any(p.requires_grad for p in copy.parameters()) and not precision.has_masters(copy)
    assert copy.lm_head.weight is copy.model.embed_tokens.weight  # tied as in the student
    with torch.no_grad():
        model.lm_head.weight.add_(1.0)
    assert not torch.equal(copy.lm_head.weight.float(), model.lm_head.weight)  # no shared storage
    # A float32 model's copy too (`.to` of the same dtype would alias the student's weights).
    plain = load_model(realistic_model_dir).requires_grad_(True)
    copied = precision.frozen_copy(plain)
    with torch.no_grad():
        plain.model.layers[0].mlp.up_proj.weight.add_(1.0)
    assert not torch.equal(copied.model.layers[0].mlp.up_proj.weight, plain.model.layers[0].mlp.up_proj.weight)


def test_the_rollout_loss_computes_in_the_compute_dtype(realistic_model_dir):
    """The on-policy/GRPO micro-batch loss of a bf16 model with float32 masters: the hidden-state pass and
    each chunk's LM head compute in bf16, as the SFT step does (and as verl's actor does under autocast)."""
    from selfdistill.backends import Completion
    from selfdistill.train.batching import output_head
    from selfdistill.train.objectives import GRPO
    from selfdistill.train.rollouts import _micro_loss, _sampled_logp_pass, _Step

    from configs import rollout_hp

    mixed = trainable_model(load_model(realistic_model_dir, dtype="bfloat16"), LORA, FULL)
    head = output_head(mixed)
    completions = [Completion(0, k, [11 + (k + i) % 7 for i in range(n)], "", "stop") for k, n in enumerate([5, 3])]
    hp = rollout_hp("grpo", n_rollouts=2, scale_rewards=False)
    objective = GRPO(hp)
    keep = objective.prepare([None], completions, [True, False])
    batch = _Step([[5, 6, 7]], completions)
    _sampled_logp_pass(mixed, head, batch, keep, 2, 0, hp.temperature, 2, None)  # the rollout's old log-probs
    seen = []
    hooks = [
        m.register_forward_hook(lambda m, a, out: seen.append(out.dtype))
        for m in (mixed.model.layers[0].mlp.down_proj, head)
    ]
    _micro_loss(mixed, head, objective, batch, 0, 2, keep, 1.0)
    for hook in hooks:
        hook.remove()
    assert len(seen) >= 3 and set(seen) == {torch.bfloat16}  # one hidden pass, then the head chunk by chunk
