"""The rollout engine of training on CPU: sampling throughput (vLLM engine vs transformers) and the
per-step cost of telling the engine the student's new weights.

    /tmp/vllm-cpu-env/bin/python bench/rollout_engine.py [--model results/models/toy/hf] [--skip-1p7b]

Writes bench/results/rollout_engine.json. Measured: (1) on the toy model, 8 prompts x 8 rollouts of
up to 160 new tokens at T = 1 (the default grid's step), new tokens per second through transformers'
`generate` on the live student and through the vLLM engine (sync, then sample), medians of 5;
(2) per-step sync time on the toy model and on a randomly initialized model of Qwen3-1.7B's shape
(bf16): a LoRA r = 64 adapter on every linear layer served by request (saved, then loaded by the
engine on the next request, timed with a 1-token request), and the full weights reloaded in place.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from selfdistill.backends import Sampling, make_rollout_engine  # noqa: E402
from selfdistill.backends.hf import HFBackend  # noqa: E402
from selfdistill.models import load_model, load_tokenizer  # noqa: E402
from selfdistill.settings.models import ModelConfig  # noqa: E402
from selfdistill.settings.training import EngineConfig, LoraConfig, TrainingConfig  # noqa: E402
from selfdistill.train.model import trainable_model  # noqa: E402

from gpu_check import QWEN3_1_7B  # noqa: E402

LORA = LoraConfig(
    r=64,
    alpha=128,
    dropout=0.0,
    target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
)
ENGINE = EngineConfig(
    backend="vllm",
    lora_sync="request",
    gpu_memory_utilization=0.1,
    sleep=True,
    importance_sampling="token",
    is_threshold=2.0,
)


def engine_for(model_dir, student, lora_sync, dtype, memory_share=0.1):
    model = ModelConfig(
        source=model_dir,
        backend="vllm",
        dtype=dtype,
        chat_kwargs={},
        lora="request",
        vllm={"max_model_len": 512, "enforce_eager": True, "max_num_batched_tokens": 8192},
        sampling={},
    )
    engine = replace(ENGINE, lora_sync=lora_sync, gpu_memory_utilization=memory_share)
    return make_rollout_engine(engine, model, student, None, model_dir, 64, seed=0)


def nudge(student):
    with torch.no_grad():
        for p in student.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 1e-3)


def sync_seconds(model_dir, finetune, lora_sync, dtype, memory_share, repeats=3):
    """Median seconds per step to sync the engine with the student (and, for an adapter, to load it)."""
    student = trainable_model(
        load_model(model_dir, dtype=dtype),
        LORA,
        TrainingConfig(finetune=finetune, gradient_checkpointing=False, loss_chunk=1024, processes=1),
    )
    engine = engine_for(model_dir, student, lora_sync, dtype, memory_share)
    one_token = Sampling(n=1, temperature=0.0, max_new_tokens=1)
    try:
        engine.sync(student)
        engine.generate([[5, 6, 7]], one_token)
        times = []
        for _ in range(repeats):
            nudge(student)
            start = time.perf_counter()
            engine.sync(student)
            engine.generate([[5, 6, 7]], one_token)  # an adapter is loaded by the first request that names it
            times.append(time.perf_counter() - start)
        base = []
        for _ in range(repeats):
            start = time.perf_counter()
            engine.generate([[5, 6, 7]], one_token)
            base.append(time.perf_counter() - start)
    finally:
        engine.close()
    return statistics.median(times) - statistics.median(base)


def throughput(model_dir):
    """New tokens per second for one training step's rollouts, transformers vs the vLLM engine."""
    tok = load_tokenizer(model_dir)
    student = trainable_model(
        load_model(model_dir),
        replace(LORA, r=8),
        TrainingConfig(finetune="lora", gradient_checkpointing=False, loss_chunk=1024, processes=1),
    )
    prompts = [
        tok(
            f"<|im_start|>user\nCompute {i}+{i % 7 + 2}+4+5. Put the final answer in \\boxed{{}}.<|im_end|>\n"
            "<|im_start|>assistant\n"
        )["input_ids"]
        for i in range(8)
    ]
    sampling = Sampling(n=8, temperature=1.0, max_new_tokens=160, seed=0)
    results = {}
    hf = HFBackend(student, tok, batch_size=64)
    engine = engine_for(model_dir, student, "request", "float32")
    try:
        for name, backend in (("transformers", hf), ("vllm", engine)):
            rates = []
            for _ in range(5):
                start = time.perf_counter()
                backend.sync(student)
                out = backend.generate(prompts, sampling)
                rates.append(sum(len(c.token_ids) for c in out) / (time.perf_counter() - start))
            results[name] = {"tokens_per_s": statistics.median(rates), "range": [min(rates), max(rates)]}
    finally:
        engine.close()
    return results


def qwen3_1p7b_dir(tokenizer_dir) -> str:
    """A randomly initialized model of Qwen3-1.7B's shape in bf16 (nothing downloaded), saved with a
    small tokenizer (the sync does not read text)."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    out = tempfile.mkdtemp(prefix="qwen3-1.7b-shape-")
    torch.manual_seed(0)
    Qwen3ForCausalLM(Qwen3Config(**QWEN3_1_7B)).to(torch.bfloat16).save_pretrained(out)
    load_tokenizer(tokenizer_dir).save_pretrained(out)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(ROOT / "results/models/toy/hf"))
    parser.add_argument("--skip-1p7b", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    results = {"rollouts_toy": throughput(args.model), "sync_seconds": {}}
    print(json.dumps(results["rollouts_toy"]))
    # vllm-cpu reserves the share of the machine's memory for weights + KV cache: 3.4 GB of bf16
    # weights need more than the toy model's 10%.
    shapes = [("toy", args.model, "float32", 0.1)]
    if not args.skip_1p7b:
        shapes.append(("qwen3_1.7b_shape", qwen3_1p7b_dir(args.model), "bfloat16", 0.5))
    for name, model_dir, dtype, memory_share in shapes:
        modes = (
            ("lora_r64_request", "lora", "request"),
            ("lora_r64_merged", "lora", "merge"),
            ("full_weights", "full", "request"),
        )
        for label, finetune, lora_sync in modes:
            seconds = sync_seconds(model_dir, finetune, lora_sync, dtype, memory_share)
            results["sync_seconds"][f"{name}/{label}"] = seconds
            print(f"{name} {label}: {seconds:.3f} s per step")
    results["machine"] = "CPU (vllm-cpu 0.32), torch threads 2"
    (ROOT / "bench/results/rollout_engine.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
