"""GPU check of the CUDA paths at a realistic size, with timings.

A randomly initialized model with Qwen3-1.7B's architecture (built from its config here, nothing
downloaded), in bf16, runs:
  1. HF `generate` (sampling T=0.6, top_p=0.95, 256 new tokens) at batch 16 and 64: tokens/s;
  2. a no-grad teacher-scoring forward through this project's `completion_logits` on 8 x 4,096
     tokens (1,024 prompt + 3,072 completion): tokens/s and utilization;
  3. a LoRA (r=64) SFT step on 4 x 2,048 tokens through `completion_nll_sum` (the reference case);
  4. one on-policy distillation step on 4 x (512 prompt + 1,536 completion) tokens: frozen teacher
     (adapter disabled) + student forward/backward + this project's top-k+tail generalized JSD,
     with the `preserve` ablation target; with and without gradient checkpointing.
Each timing is the median of 3 after a warm-up; peak memory is torch's max allocated.

Utilization = model FLOPs / (time x measured bf16 matmul rate on this GPU), model FLOPs counting
2 x params x tokens per forward (lm_head only on the positions whose logits are kept), 2x that
again for a backward (6N convention, as in the reference figures), plus causal attention.
Recomputation by gradient checkpointing is not counted as useful work.

    python bench/gpu_check.py            # on a CUDA machine; writes bench/results/gpu_check.json
    python bench/gpu_check.py --tiny     # a 2-layer model on CPU, to check the script itself
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the device machine runs this checkout without installing it

from selfdistill.train.batching import completion_logits, completion_nll_sum  # noqa: E402
from selfdistill.train.objectives import distill_token_loss  # noqa: E402

QWEN3_1_7B = dict(
    hidden_size=2048,
    intermediate_size=6144,
    num_hidden_layers=28,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=128,
    vocab_size=151936,
    max_position_embeddings=40960,
    rope_theta=1_000_000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
)
TINY = dict(
    QWEN3_1_7B,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    vocab_size=1000,
)
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats=3):
    """Median seconds of `repeats` calls after one warm-up, and peak memory (GiB) over them."""
    fn()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    return statistics.median(times), peak


def matmul_rate(device, dtype):
    """Measured dense matmul FLOP/s: the ceiling utilization is quoted against."""
    n = 8192 if device.type == "cuda" else 512
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    seconds, _ = timed(lambda: [a @ b for _ in range(10)], device)
    return 10 * 2 * n**3 / seconds


def forward_flops(cfg, batch, prompt_len, completion_len, kept):
    """Matmul FLOPs of one forward: weights on every token, lm_head on kept positions, causal attention."""
    h, layers = cfg["hidden_size"], cfg["num_hidden_layers"]
    q, kv = cfg["num_attention_heads"] * cfg["head_dim"], cfg["num_key_value_heads"] * cfg["head_dim"]
    per_layer = h * q + 2 * h * kv + q * h + 3 * h * cfg["intermediate_size"]
    tokens = prompt_len + completion_len
    weights = 2 * per_layer * layers * tokens
    attention = 2 * layers * q * tokens * tokens  # QK^T and AV, 2 FLOPs each, causal half
    return batch * (weights + attention + 2 * h * cfg["vocab_size"] * kept)


def build(cfg, device, dtype):
    from transformers import AutoModelForCausalLM, Qwen3Config

    torch.manual_seed(0)
    with device:  # initialize on the device: random init of 1.7B parameters on CPU takes long
        return AutoModelForCausalLM.from_config(Qwen3Config(**cfg), dtype=dtype, attn_implementation="sdpa")


def random_ids(vocab, batch, length, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(10, vocab, (batch, length), generator=g).tolist()


def check_generate(model, cfg, device, batch, prompt_len, new_tokens):
    prompt = torch.tensor(random_ids(cfg["vocab_size"], batch, prompt_len, 1), device=device)

    def run():
        with torch.no_grad():
            out = model.generate(
                input_ids=prompt,
                attention_mask=torch.ones_like(prompt),
                do_sample=True,
                temperature=0.6,
                top_p=0.95,
                top_k=0,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                pad_token_id=0,
            )
        assert out.shape == (batch, prompt_len + new_tokens)

    with torch.no_grad():  # warm-up: a short call, so the timed one is the only long one
        model.generate(input_ids=prompt, do_sample=True, max_new_tokens=4, pad_token_id=0)
    sync(device)
    start = time.perf_counter()
    run()
    sync(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    return {
        "batch": batch,
        "prompt_tokens": prompt_len,
        "new_tokens": new_tokens,
        "seconds": seconds,
        "tokens_per_s": batch * new_tokens / seconds,
        "peak_mem_gib": peak,
    }


def check_scoring(model, cfg, device, rate, batch, prompt_len, completion_len):
    prompts = random_ids(cfg["vocab_size"], batch, prompt_len, 2)
    completions = random_ids(cfg["vocab_size"], batch, completion_len, 3)

    def run():
        with torch.no_grad():
            logits, mask, _ = completion_logits(model, prompts, completions, pad_id=0)
            assert torch.isfinite(logits[mask]).all()

    seconds, peak = timed(run, device)
    flops = forward_flops(cfg, batch, prompt_len, completion_len, completion_len)
    return {
        "batch": batch,
        "prompt_tokens": prompt_len,
        "completion_tokens": completion_len,
        "seconds": seconds,
        "tokens_per_s": batch * (prompt_len + completion_len) / seconds,
        "utilization": flops / seconds / rate,
        "peak_mem_gib": peak,
    }


def lora_model(model, r):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=LORA_TARGETS))


def set_checkpointing(model, on: bool):
    if on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()


def check_sft_step(model, cfg, device, rate, batch, length, checkpointing):
    from selfdistill.train.batching import build_batch

    set_checkpointing(model, checkpointing)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    half = length // 2
    tensors = build_batch(
        random_ids(cfg["vocab_size"], batch, half, 4), random_ids(cfg["vocab_size"], batch, half, 5), 0
    )
    tensors = {k: v.to(device) for k, v in tensors.items()}

    def step():
        nll, count = completion_nll_sum(model, tensors)
        (nll / count).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    seconds, peak = timed(step, device)
    flops = 3 * forward_flops(cfg, batch, 0, length, length)
    return {
        "batch": batch,
        "tokens": length,
        "gradient_checkpointing": checkpointing,
        "seconds": seconds,
        "utilization": flops / seconds / rate,
        "peak_mem_gib": peak,
    }


def check_distill_step(model, cfg, device, rate, batch, prompt_len, completion_len, checkpointing, compiled=False):
    set_checkpointing(model, checkpointing)
    forward = torch.compile(model) if compiled else model  # the peft model keeps disable_adapter()
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    student_prompts = random_ids(cfg["vocab_size"], batch, prompt_len // 2, 6)
    teacher_prompts = random_ids(cfg["vocab_size"], batch, prompt_len, 7)
    completions = random_ids(cfg["vocab_size"], batch, completion_len, 8)
    in_e = torch.zeros(cfg["vocab_size"], dtype=torch.bool, device=device)
    in_e[torch.randperm(cfg["vocab_size"], generator=torch.Generator().manual_seed(9))[:60].to(device)] = True
    hp = SimpleNamespace(
        temperature=0.6, support="topk", topk=100, alpha=0.5
    )  # the OnPolicyConfig fields the loss reads

    def step():
        with torch.no_grad(), model.disable_adapter():
            teacher_logits = completion_logits(forward, teacher_prompts, completions, 0)[0]
        logits, mask, ids = completion_logits(forward, student_prompts, completions, 0)
        per_token, _ = distill_token_loss(logits, teacher_logits, ids, in_e, hp, "preserve")
        loss = (per_token * mask).sum() / mask.sum()
        assert torch.isfinite(loss)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    seconds, peak = timed(step, device)
    flops = forward_flops(cfg, batch, prompt_len, completion_len, completion_len) + 3 * forward_flops(
        cfg, batch, prompt_len // 2, completion_len, completion_len
    )
    return {
        "batch": batch,
        "teacher_prompt_tokens": prompt_len,
        "student_prompt_tokens": prompt_len // 2,
        "completion_tokens": completion_len,
        "loss": "generalized JSD alpha=0.5, top-100 + tail, preserve",
        "gradient_checkpointing": checkpointing,
        "torch_compile": compiled,
        "seconds": seconds,
        "completion_tokens_per_s": batch * completion_len / seconds,
        "utilization": flops / seconds / rate,
        "peak_mem_gib": peak,
    }


def distill_variants(model, cfg, device, rate, scale, out: Path):
    """Ways to raise the distillation step's utilization, recorded next to the main results."""
    result = json.loads(out.read_text()) if out.exists() else {}
    variants = []
    for batch, compiled in ((8, False), (4, True), (8, True)):
        try:
            variants.append(
                check_distill_step(model, cfg, device, rate, batch, 512 // scale, 1536 // scale, False, compiled)
            )
        except Exception as error:  # record what failed (e.g. a compile error) and go on
            variants.append({"batch": batch, "torch_compile": compiled, "error": repr(error)[:500]})
        print(json.dumps(variants[-1], indent=1), flush=True)
    result["distill_step_variants"] = variants
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="2-layer model on CPU: checks the script, not the GPU")
    parser.add_argument(
        "--variants",
        action="store_true",
        help="only the distillation-step variants (batch 8, torch.compile), added to --out",
    )
    parser.add_argument("--out", default=str(ROOT / "bench/results/gpu_check.json"))
    args = parser.parse_args()
    import peft
    import transformers

    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    if device.type != "cuda" and not args.tiny:
        sys.exit("no CUDA device: run on a GPU machine, or pass --tiny to check the script on CPU")
    cfg = TINY if args.tiny else QWEN3_1_7B
    scale = 16 if args.tiny else 1  # sequence lengths divided by this for the CPU check
    dtype = torch.bfloat16
    rate = matmul_rate(device, dtype)
    model = build(cfg, device, dtype)
    result = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        "model": "Qwen3-1.7B architecture, random init" if not args.tiny else "tiny Qwen3 (script check)",
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": "bfloat16",
        "attention": "sdpa",
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "python": platform.python_version(),
        },
        "matmul_tflops_measured": rate / 1e12,
    }
    print(json.dumps(result, indent=1), flush=True)
    if args.variants:
        return distill_variants(lora_model(model, 64), cfg, device, rate, scale, Path(args.out))
    result["generate"] = [check_generate(model, cfg, device, b, 128 // scale, 256 // scale) for b in (16, 64)]
    print(json.dumps(result["generate"], indent=1), flush=True)
    result["scoring_forward"] = check_scoring(model, cfg, device, rate, 8, 1024 // scale, 3072 // scale)
    print(json.dumps(result["scoring_forward"], indent=1), flush=True)
    model = lora_model(model, 64)
    result["lora_sft_step"] = [check_sft_step(model, cfg, device, rate, 4, 2048 // scale, c) for c in (True, False)]
    print(json.dumps(result["lora_sft_step"], indent=1), flush=True)
    result["distill_step"] = [
        check_distill_step(model, cfg, device, rate, 4, 512 // scale, 1536 // scale, c) for c in (True, False)
    ]
    print(json.dumps(result["distill_step"], indent=1), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
