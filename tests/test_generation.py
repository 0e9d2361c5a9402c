import pytest

from selfdistill.backends import Sampling
from selfdistill.backends.hf import HFBackend


def test_a_prompt_past_the_models_context_is_refused_before_generating(tiny_model_dir):
    """A 200 KB problem on a 256-position model used to be generated past the context, silently."""
    backend = HFBackend.load(tiny_model_dir)
    short, long = [1, 2, 3], [5] * 240
    backend.generate([short], Sampling(n=1, temperature=0, max_new_tokens=16))  # fits: 3 + 16 <= 256
    with pytest.raises(
        ValueError,
        match=r"prompt 1 has 240 tokens; with max_new_tokens = 32 it needs 272 positions, "
        r"more than the model's context of 256 \(max_position_embeddings\)",
    ):
        backend.generate([short, long], Sampling(n=1, temperature=0, max_new_tokens=32))


def test_scoring_past_the_context_is_refused(tiny_model_dir):
    """A teacher prompt with a long solution plus the student's completion can outgrow the context."""
    from selfdistill.models import load_model
    from selfdistill.train.batching import completion_logits

    model = load_model(tiny_model_dir)
    completion_logits(model, [[1] * 200], [[2] * 56], pad_id=0)  # 256: fits
    with pytest.raises(ValueError, match="a prompt \\+ completion of 257 tokens exceeds the model's context of 256"):
        completion_logits(model, [[1] * 200, [1] * 10], [[2] * 57, [2] * 3], pad_id=0)
