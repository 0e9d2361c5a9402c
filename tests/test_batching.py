import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from selfdistill.train.batching import IGNORE, build_batch, completion_nll_sum

EOS = 2


def test_labels_cover_completion_and_eos_only():
    batch = build_batch([[5, 6, 7], [5]], [[8, 9, EOS], [8, EOS]], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, EOS], [5, 8, EOS, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1] * 6, [1, 1, 1, 0, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE] * 3 + [8, 9, EOS], [IGNORE, 8, EOS, IGNORE, IGNORE, IGNORE]]


def test_eos_kept_when_pad_equals_eos():
    batch = build_batch([[5, 6], [5]], [[8, EOS], [EOS]], pad_id=EOS)
    # EOS completes both rows and keeps its label; the padding EOS after it does not.
    assert batch["labels"].tolist() == [[IGNORE, IGNORE, 8, EOS], [IGNORE, EOS, IGNORE, IGNORE]]


def _tiny_model():
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=16,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=32,
    )
    return Qwen2ForCausalLM(cfg).eval()


def test_completion_nll_matches_a_direct_computation():
    model = _tiny_model()
    prompts, completions = [[3, 4, 5], [3]], [[6, 7, EOS], [9, EOS]]
    nll, n = completion_nll_sum(model, build_batch(prompts, completions, pad_id=0))
    assert n == 5
    expected = 0.0
    for p, c in zip(prompts, completions, strict=True):
        ids = torch.tensor([p + c])
        logp = torch.log_softmax(model(ids).logits[0].double(), -1)
        expected -= sum(logp[len(p) - 1 + i, tok].item() for i, tok in enumerate(c))
    assert abs(nll.item() - expected) < 1e-4


def test_padding_does_not_change_the_loss():
    model = _tiny_model()
    alone, _ = completion_nll_sum(model, build_batch([[3]], [[9, EOS]], pad_id=0))
    padded, _ = completion_nll_sum(model, build_batch([[3], [3, 4, 5, 6, 7]], [[9, EOS], [1, 1, 1, EOS]], pad_id=0))
    row2, _ = completion_nll_sum(model, build_batch([[3, 4, 5, 6, 7]], [[1, 1, 1, EOS]], pad_id=0))
    assert abs(padded.item() - (alone.item() + row2.item())) < 1e-4


def test_completion_logits_equal_a_direct_forward_on_the_concatenation():
    from selfdistill.train.batching import completion_logits

    model = _tiny_model()
    prompts, completions = [[3, 4, 5, 6], [3]], [[7, EOS], [9, 8, 1, EOS]]
    logits, mask, ids = completion_logits(model, prompts, completions, pad_id=0)
    assert logits.shape[:2] == (2, 4)
    assert mask.tolist() == [[True, True, False, False], [True] * 4]
    for row, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        assert ids[row, : len(c)].tolist() == c  # the identical completion ids, not re-tokenized
        direct = model(torch.tensor([p + c])).logits[0, len(p) - 1 : len(p) + len(c) - 1]
        torch.testing.assert_close(logits[row, : len(c)], direct, atol=1e-5, rtol=1e-4)


def test_micro_batches_group_similar_lengths_and_keep_every_index():
    from selfdistill.train.batching import micro_batches

    lengths = {10: 50, 11: 3, 12: 48, 13: 5, 14: 20}
    micros = micro_batches([10, 11, 12, 13, 14], 2, lengths.get)
    assert micros == [[11, 13], [14, 12], [10]]
    # Padded compute (rows x longest per micro-batch) is below that of the split in given order.
    padded = sum(len(m) * max(map(lengths.get, m)) for m in micros)
    assert padded < 2 * 50 + 2 * 48 + 20


def test_pretraining_loss_is_the_mean_over_trained_tokens_whatever_the_split():
    from selfdistill.toy_model import pretraining_loss

    model = _tiny_model()
    # (prompt, response ids, trained): the middle of the second response is a masked wrong guess.
    examples = [
        ([3, 4, 5, 6], [7, EOS], [True, True]),
        ([3, 5, 7], [9, 8, 1, EOS], [True, False, False, True]),
        ([3, 5], [6, 6, 6, 6, 6, EOS], [True] * 6),
    ]
    expected, count = 0.0, 0
    for prompt, response, trained in examples:
        logp = torch.log_softmax(model(torch.tensor([prompt + response])).logits[0].double(), -1)
        for i, (tok, keep) in enumerate(zip(response, trained, strict=True)):
            if keep:
                expected -= logp[len(prompt) - 1 + i, tok].item()
                count += 1
    grads = []
    for size in (1, 2, 3):
        model.zero_grad()
        nll, n = pretraining_loss(model, examples, pad_id=0, micro_batch_size=size)
        assert n == count == 10
        assert abs(nll - expected) < 1e-4
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[2], atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(grads[1], grads[2], atol=1e-6, rtol=1e-4)


def test_a_prompt_without_its_completion_is_refused_not_dropped():
    """Prompts and completions pair by position: one list longer than the other is a caller's bug that
    would silently drop examples (or shift every pair after it), so it raises."""
    with pytest.raises(ValueError):
        build_batch([[1, 2], [3]], [[4]], 0)
    with pytest.raises(ValueError):
        build_batch([[1, 2]], [[4], [5]], 0)


def test_completion_hidden_computes_no_logits_and_fits_the_context_exactly():
    """At 8k-40k-token responses a full [B, L, V] logits tensor is tens of GB: the forward asks for none
    (the LM head sees zero positions). A prompt + completion of exactly the model's context fits; one token
    more is refused before the forward, naming the lengths and the fix."""
    from selfdistill.train.batching import completion_hidden

    model = _tiny_model()  # max_position_embeddings 32
    seen = []
    hook = model.get_output_embeddings().register_forward_hook(lambda m, args, out: seen.append(out.shape[1]))
    hidden, mask, ids = completion_hidden(model, [[3] * 20, [4]], [[5] * 12, [6, 7]], 0)
    hook.remove()
    assert seen == [0] and hidden.shape == (2, 12, 16) and mask.sum().item() == 14
    with pytest.raises(ValueError, match=r"a prompt \+ completion of 33 tokens exceeds the model's context of 32 "):
        completion_hidden(model, [[3] * 20, [4]], [[5] * 13, [6, 7]], 0)
    fix = r"of 32 positions: lower max_new_tokens, or use shorter contexts \(solutions\) in the teacher prompt$"
    with pytest.raises(ValueError, match=fix):
        completion_hidden(model, [[4], [3] * 2], [[6, 7], [5] * 31], 0)  # the longer completion, not the prompt
