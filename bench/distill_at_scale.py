"""One distillation micro-batch at the paper's shape on a GPU: seconds and peak memory.

    python bench/distill_at_scale.py            # on a GPU; writes bench/results/distill_at_scale.json
    python bench/distill_at_scale.py --tiny     # a tiny model on CPU: checks the script runs

One rollout of 8,192 and of 20,480 completion tokens after a 512-token prompt (the teacher's prompt
512 tokens longer, holding the context), for models of Qwen3-1.7B's and Qwen3-8B's architecture
(random init, created in bf16, nothing downloaded), trained as a LoRA adapter (r = 64, every linear
layer) and fully (float32 masters computing in bf16, as training does), with gradient checkpointing:
the frozen teacher's forward, the student's forward, SDPO's loss (generalized JSD, alpha 0.5, top-100
+ tail, `preserve`) and the backward, through the project's own functions, with the loss over 1,024
completion positions at a time (`loss_chunk`) and over all of them at once. Out-of-memory is recorded as such.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # the device machine runs this checkout without installing it

from selfdistill import precision  # noqa: E402
from selfdistill.settings.training import LoraConfig, TrainingConfig  # noqa: E402
from selfdistill.train.batching import completion_hidden, output_head  # noqa: E402
from selfdistill.train.model import trainable_model  # noqa: E402
from selfdistill.train.objectives import distill_token_loss  # noqa: E402
from selfdistill.train.step import backward_in_chunks  # noqa: E402

from gpu_check import QWEN3_1_7B, TINY, build  # noqa: E402

QWEN3_8B = dict(
    QWEN3_1_7B,
    hidden_size=4096,
    intermediate_size=12288,
    num_hidden_layers=36,
    num_attention_heads=32,
    num_key_value_heads=8,
    tie_word_embeddings=False,
)
LORA = LoraConfig(
    r=64,
    alpha=128,
    dropout=0.0,
    target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
)
LOSS = SimpleNamespace(temperature=1.0, support="topk", topk=100, alpha=0.5)  # the OnPolicyConfig fields it reads


def models(arch: dict, finetune: str, chunk: int, device, dtype):
    """The student, trainable as the training script makes it (LoRA, or float32 masters computing in
    `dtype`), and its frozen teacher (LoRA: the student itself, whose adapter-disabled forward costs the same)."""
    base = build(arch, torch.device(device), dtype)
    training = TrainingConfig(finetune=finetune, gradient_checkpointing=True, loss_chunk=chunk, processes=1)
    teacher = copy.deepcopy(base).eval().requires_grad_(False) if finetune == "full" else None
    student = trainable_model(base, LORA, training).train()
    return student, teacher if teacher is not None else student


def rollout(vocab: int, length: int, device, prompt_len: int = 512):
    """A prompt, the teacher's (twice as long: it holds the context), a completion of `length`
    tokens, and the epistemic token ids (the `preserve` ablation's set)."""
    gen = torch.Generator().manual_seed(1)
    prompt = torch.randint(10, vocab, (prompt_len,), generator=gen).tolist()
    teacher_prompt = torch.randint(10, vocab, (2 * prompt_len,), generator=gen).tolist()
    completion = torch.randint(10, vocab, (length,), generator=gen).tolist()
    in_e = torch.zeros(vocab, dtype=torch.bool, device=device)
    in_e[:64] = True
    return prompt, teacher_prompt, completion, in_e


def distill_loss(student, teacher, hidden, teacher_hidden, ids, mask, in_e, chunk: int) -> float:
    """SDPO's loss over one sequence's completion positions from the final hidden states, computed
    and back-propagated `chunk` positions at a time (the training loop's `backward_in_chunks`), each
    model's head under its own precision (float32 masters: autocast)."""
    head, teacher_head = output_head(student), output_head(teacher)

    def chunk_loss(h, positions):
        with torch.no_grad(), precision.autocast(teacher):
            target = teacher_head(teacher_hidden[:, positions])
        with precision.autocast(student):
            logits = head(h)
        per_token, div = distill_token_loss(logits, target, ids[:, positions], in_e, LOSS, "preserve")
        return (per_token * mask[:, positions]).sum(), (div * mask[:, positions]).sum()

    return backward_in_chunks(hidden, chunk_loss, chunk, 1.0 / hidden.shape[1])[0]


def step(student, teacher, prompt, teacher_prompt, completion, chunk: int, in_e) -> float:
    """One micro-batch: the teacher's and the student's forward, the chunked loss, the backward."""
    with torch.no_grad(), precision.autocast(teacher):
        teacher_hidden = completion_hidden(teacher, [teacher_prompt], [completion], 0)[0]
    with precision.autocast(student):
        hidden, mask, ids = completion_hidden(student, [prompt], [completion], 0)
    return distill_loss(student, teacher, hidden, teacher_hidden, ids, mask, in_e, chunk)


def measure(arch_name: str, arch: dict, finetune: str, length: int, chunk: int, device, dtype) -> dict:
    row = {"model": arch_name, "finetune": finetune, "completion_tokens": length, "loss_chunk": chunk}
    student = teacher = None
    try:
        student, teacher = models(arch, finetune, chunk, device, dtype)
        prompt, teacher_prompt, completion, in_e = rollout(arch["vocab_size"], length, device)
        step(student, teacher, prompt, teacher_prompt, completion[:64], chunk, in_e)  # warm-up
        student.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        step(student, teacher, prompt, teacher_prompt, completion, chunk, in_e)
        if device == "cuda":
            torch.cuda.synchronize()
            row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        row["seconds"] = time.perf_counter() - start
        row["tokens_per_s"] = length / row["seconds"]
    except torch.OutOfMemoryError:
        row["error"] = "out of memory"
    finally:
        del student, teacher
        if device == "cuda":
            torch.cuda.empty_cache()
    print(json.dumps(row), flush=True)
    return row


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", action="store_true", help="a tiny model on CPU (checks the script)")
    parser.add_argument("--out", help="result file (default: bench/results/distill_at_scale[_tiny].json)")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    archs = {"tiny": TINY} if args.tiny else {"qwen3_1.7b": QWEN3_1_7B, "qwen3_8b": QWEN3_8B}
    lengths = (256, 640) if args.tiny else (8192, 20480)
    chunk = 128 if args.tiny else 1024
    rows = [
        measure(name, arch, finetune, length, c, device, dtype)
        for name, arch in archs.items()
        for finetune in ("lora", "full")
        for length in lengths
        for c in (chunk, length)
    ]
    device_name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    out = {"device": device_name, "torch": torch.__version__, "rows": rows}
    name = "distill_at_scale_tiny.json" if args.tiny else "distill_at_scale.json"
    Path(args.out or ROOT / "bench/results" / name).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
