import pytest
import torch

from selfdistill.backends import Sampling
from selfdistill.backends.hf import HFBackend


def test_a_prompt_past_the_models_context_is_refused_before_generating(tiny_model_dir):
    """A 200 KB problem on a 256-position model used to be generated past the context, silently."""
    backend = HFBackend.load(tiny_model_dir)
    short, long = [1, 2, 3], [5] * 240
    backend.generate([short], Sampling(n=1, temperature=0, max_new_tokens=16))  # fits: 3 + 16 <= 256
    with pytest.raises(
        ValueError,
        match=r"prompt 1 has 240 tokens; with a budget of 32 new tokens \(max_new_tokens = 32\) it needs 272 "
        r"positions, more than the model's context of 256 \(max_position_embeddings\)",
    ):
        backend.generate([short, long], Sampling(n=1, temperature=0, max_new_tokens=32))
    # A prompt + response cap (verl's rollout max_model_len) gives a long prompt a smaller budget.
    capped = Sampling(n=2, temperature=1.0, max_new_tokens=32, max_total_tokens=250, seed=1)
    out = backend.generate([short, long], capped)
    assert {len(c.token_ids) for c in out if c.prompt_index == 1} <= set(range(1, 11))
    assert all(c.finish_reason == "length" for c in out if c.prompt_index == 1 and len(c.token_ids) == 10)


def test_scoring_past_the_context_is_refused(tiny_model_dir):
    """A teacher prompt with a long solution plus the student's completion can outgrow the context."""
    from selfdistill.models import load_model
    from selfdistill.train.batching import completion_logits

    model = load_model(tiny_model_dir)
    completion_logits(model, [[1] * 200], [[2] * 56], pad_id=0)  # 256: fits
    with pytest.raises(ValueError, match="a prompt \\+ completion of 257 tokens exceeds the model's context of 256"):
        completion_logits(model, [[1] * 200, [1] * 10], [[2] * 57, [2] * 3], pad_id=0)


def test_banning_the_epistemic_ids_removes_them_from_samples(tiny_model_dir):
    """An eval set's `epistemic: banned` (NoWait at inference): no sampled id is in the set E; the
    same sampling without the ban does produce them (the random tiny model samples widely)."""
    from selfdistill.backends import Sampling, epistemic_ids
    from selfdistill.backends.hf import HFBackend

    backend = HFBackend.load(tiny_model_dir)
    banned = set(epistemic_ids(backend.tokenizer))
    assert banned
    prompt = [backend.tokenizer.encode("Compute 1+2+3.")]

    def sampled(ban):
        sampling = Sampling(n=16, temperature=1.5, max_new_tokens=40, seed=0, epistemic="banned" if ban else "free")
        return [t for c in backend.generate(prompt, sampling) for t in c.token_ids]

    assert banned & set(sampled(False))
    assert not banned & set(sampled(True))


def test_forcing_holds_back_the_end_of_thinking_until_an_epistemic_word(tiny_model_dir):
    """`epistemic: forced` (s1-style budget forcing): no completion ends (EOS or </think>) before
    it has sampled an id of E. The tiny model is biased to end at once, so without forcing nearly
    every completion ends with no epistemic word (the negative control)."""
    from selfdistill.backends import end_of_thinking_ids
    from selfdistill.backends.hf import HFBackend

    from configs import ended_before_a_word

    backend = HFBackend.load(tiny_model_dir)
    model, tok = backend.model, backend.tokenizer
    ends = set(end_of_thinking_ids(tok))
    assert tok.eos_token_id in ends and tok.convert_tokens_to_ids("</think>") in ends
    head = torch.nn.Linear(model.config.hidden_size, len(tok), bias=True)
    with torch.no_grad():
        head.weight.copy_(model.get_output_embeddings().weight)
        head.bias.zero_()
        head.bias[tok.eos_token_id] = 30.0
    model.lm_head = head
    prompt = [tok.encode("Compute 1+2+3.")]

    assert ended_before_a_word(backend, prompt, "free")[0] >= 30
    bad, stopped = ended_before_a_word(backend, prompt, "forced")
    # None ends early, and once a word is out the biased EOS follows: forcing is released, not stuck.
    assert bad == 0 and stopped >= 16


def test_eval_sets_carry_the_ban_into_sampling():
    from dataclasses import replace

    from selfdistill.backends import Sampling
    from selfdistill.settings.core import build
    from selfdistill.settings.generation import EvalSetConfig
    from selfdistill.settings.models import ModelConfig

    from configs import CONFIG

    eval_set = build(EvalSetConfig, CONFIG["eval_sets"]["ood"])
    assert eval_set.epistemic == "free"  # the declared default
    model = ModelConfig(source="m")
    for mode in ("banned", "forced"):
        assert Sampling.of(replace(eval_set, epistemic=mode), 0, model, "eval_sets.ood").epistemic == mode


def test_a_model_s_sampling_replaces_what_evaluation_and_data_sample_with_but_never_training_s(caplog):
    """The one rule of models.<name>.sampling: it replaces the keys it sets in every section that
    samples for evaluation or as data (an eval set, the teacher, Table 1), logging each; the training
    rollouts sample as their own section says (their temperature is in the loss), and the training
    jobs never receive the key."""
    import logging

    from selfdistill.backends import Sampling
    from selfdistill.settings.core import build
    from selfdistill.settings.generation import EvalSetConfig, TeacherConfig
    from selfdistill.settings.models import ModelConfig, model_section
    from selfdistill.settings.table1 import Table1Sampling

    from configs import CONFIG

    model = ModelConfig(source="m", sampling={"temperature": 0.7, "top_k": 20})
    table1 = {"n_samples": 2, "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 8, "seed": 0}
    sections = {
        "eval_sets.ood": build(EvalSetConfig, CONFIG["eval_sets"]["ood"]),
        "teacher": build(TeacherConfig, CONFIG["teacher"]),
        "table1.sampling": build(Table1Sampling, table1),
    }
    for name, section in sections.items():
        with caplog.at_level(logging.INFO):
            sampling = Sampling.of(section, 0, model, name)
        assert (sampling.temperature, sampling.top_k, sampling.top_p) == (0.7, 20, section.top_p), name
        assert f"temperature = 0.7 from the model's `sampling` overrides {name}.temperature = 0.6" in caplog.text
    cfg = {"models": {"m": {"source": "m", "sampling": {"temperature": 0.7}, "toy_pretrain": {"seed": 1}}}}
    assert model_section(cfg, "m", "generation") == {"source": "m", "sampling": {"temperature": 0.7}}
    assert model_section(cfg, "m", "training") == {"source": "m"}
