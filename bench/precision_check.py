"""Mixed-precision training on CUDA (float32 master weights, bf16 compute) at Qwen3-1.7B's size.

A randomly initialized model with Qwen3-1.7B's architecture (built from its config: nothing is
downloaded), created in bf16, runs three parts through this project's own training code; the
results file is rewritten as each part ends, and a part (or a size within it) that runs out of
memory or fails is recorded as such, with the size tried, and the script goes on:

  1. mixed_precision_step: `trainable_model(finetune: full)` (float32 masters, autocast to bf16)
     takes one SFT step (`train_sft`) at lr 1e-6; so do a float32 model from the same bf16-rounded
     weights (the reference) and the bf16 model itself (bf16 weights and AdamW state, the negative
     control). Recorded: each update's relative error to the reference's and the fraction of the
     weights it changed (every weight, and the step log's sampled `update_changed`); then the mixed
     step's seconds and peak memory with gradient checkpointing at 1 x 8,192 and 4 x 2,048 tokens.
  2. fsdp_one_rank: bench/fsdp_check.py with one rank (torchrun, nccl, FSDP2 with the project's
     MixedPrecisionPolicy, sharded although alone) against the plain process: losses and the update
     of sampled weights within stated tolerances, the dtypes inside the forward, seconds, peak memory.
  3. chunked_distillation_loss: SDPO's loss (generalized JSD, alpha 0.5, the student's top-100 +
     tail, `preserve`) over one completion of 20,480 positions x 151,936 ids, from the final hidden
     states, forward and backward through `backward_in_chunks` with loss_chunk 1,024, against the
     same over all positions at once (modelled: one [20,480 x 151,936] float32 tensor is 12.4 GB =
     11.6 GiB; the loss holds several); then the whole micro-batch of bench/distill_at_scale.py at
     that length (the frozen teacher's and the student's forward, the chunked loss, the backward).
     The student is float32 masters under autocast, the frozen teacher bf16, as in training.

Timings are medians of 3 after a warm-up (all-at-once: 1); peak memory is torch's max allocated.
The checks' verdicts are under "checks"; the script exits non-zero when one fails or a part errs.

    python bench/precision_check.py            # CUDA (expected: 2-3 min on one H100); writes
                                               # bench/results/precision_check.json
    python bench/precision_check.py --tiny     # a 2-layer model on CPU: checks the script
    python bench/precision_check.py --parts 3  # only some parts (1, 2, 3)
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # the device machine runs this checkout without installing it

import distill_at_scale  # noqa: E402
import fsdp_check  # noqa: E402

from selfdistill.settings.training import TrainingConfig  # noqa: E402
from selfdistill.train.model import trainable_model  # noqa: E402
from selfdistill.train.sft import train_sft  # noqa: E402

from gpu_check import QWEN3_1_7B, TINY, build, set_checkpointing, timed  # noqa: E402

LR = 1e-6  # GRPO's, the smallest step the paper takes: the hardest to represent
LOSS_CHUNK = 1024
FULL = TrainingConfig(finetune="full", gradient_checkpointing=True, loss_chunk=LOSS_CHUNK, processes=1)
# The bounds of tests/test_precision.py (the same property on CPU).
MIXED_MAX_ERROR, MIXED_MIN_CHANGED = 0.1, 0.9
PURE_MIN_ERROR, PURE_MAX_CHANGED = 0.5, 0.2


def gib(n_bytes: float) -> float:
    return n_bytes / 2**30


def allocated(device) -> float | None:
    return gib(torch.cuda.memory_allocated()) if device.type == "cuda" else None


def release(device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def attempt(device, what: dict, measure) -> dict:
    """`what` (the size tried) with `measure()`'s results; out of memory or another error is recorded
    in their place, the memory released, and the script goes on."""
    try:
        outcome = {**what, **measure()}
    except torch.OutOfMemoryError:
        outcome = {**what, "error": "out of memory"}
    except Exception:
        outcome = {**what, "error": traceback.format_exc()[-3000:]}
    release(device)  # after the handler: the traceback, and the tensors its frames held, are gone
    print(json.dumps(outcome), flush=True)
    return outcome


# ---- 1. the mixed-precision optimizer step --------------------------------------------------------


def sft_step(model, examples) -> dict:
    """One SFT optimizer step over all `examples` (one micro-batch): its step-log row's values."""
    hp = fsdp_check.sft_config(LR, len(examples), len(examples))
    (row,) = train_sft(model, fsdp_check.PAD, examples, hp, seed=0, loss_chunk=LOSS_CHUNK)
    return {key: row[key] for key in ("loss", "grad_norm", "update_changed", "update_ratio")}


def update_stats(model, initial, reference: dict) -> dict:
    """The step's update (trained minus `initial` weights) over every weight: the fraction of the
    weights it changed, its relative error to `reference` (the float32 step's update), and what that
    error is made of: the update's norm relative to the reference's (lost updates shrink it) and the
    fraction of the reference's nonzero entries it moves the same way (bf16 compute flips the sign of
    the smallest gradients; AdamW's first step is ~lr x sign, so a fraction f of flips alone gives an
    error of ~2 sqrt(f))."""
    changed = total = agree = moved = 0
    err_sq = ref_sq = norm_sq = 0.0
    for name, p in model.named_parameters():
        update, ref = p.detach().float() - initial.get_parameter(name).float(), reference[name]
        changed, total = changed + int(update.count_nonzero()), total + update.numel()
        agree, moved = agree + int((update.sign() == ref.sign())[ref != 0].sum()), moved + int(ref.count_nonzero())
        err_sq += float(torch.linalg.vector_norm(update - ref, dtype=torch.float64) ** 2)
        ref_sq += float(torch.linalg.vector_norm(ref, dtype=torch.float64) ** 2)
        norm_sq += float(torch.linalg.vector_norm(update, dtype=torch.float64) ** 2)
    return {
        "changed_all_weights": changed / total,
        "relative_error_to_float32": (err_sq / ref_sq) ** 0.5,
        "norm_ratio_to_float32": (norm_sq / ref_sq) ** 0.5,
        "same_sign_as_float32": agree / moved,
    }


def compare_steps(cfg, device, scale) -> dict:
    """One step at lr 1e-6 from the same bf16 weights: float32 throughout (the reference), float32
    masters with bf16 compute, and bf16 weights (the negative control); 2 x (256 + 768) tokens."""
    base = build(cfg, device, torch.bfloat16).requires_grad_(False)  # every variant starts from its weights
    prompt_len, completion_len = 256 // scale, 768 // scale
    examples = fsdp_check.random_examples(cfg["vocab_size"], 2, prompt_len, completion_len)
    result = {"sequences": 2, "prompt_tokens": prompt_len, "completion_tokens": completion_len, "lr": LR}

    reference_model = copy.deepcopy(base).float().requires_grad_(True)
    set_checkpointing(reference_model, True)
    result["float32_reference"] = sft_step(reference_model, examples)
    reference = {n: p.detach() - base.get_parameter(n).float() for n, p in reference_model.named_parameters()}
    del reference_model
    release(device)
    changed = sum(float(u.count_nonzero()) for u in reference.values()) / sum(u.numel() for u in reference.values())
    result["float32_reference"]["changed_all_weights"] = changed

    mixed = trainable_model(copy.deepcopy(base), None, FULL)
    result["mixed_precision"] = {**sft_step(mixed, examples), **update_stats(mixed, base, reference)}
    del mixed
    release(device)

    pure = copy.deepcopy(base).requires_grad_(True)
    set_checkpointing(pure, True)
    result["pure_bf16_negative_control"] = {**sft_step(pure, examples), **update_stats(pure, base, reference)}
    return result


def step_timing(cfg, device, sequences: int, length: int, steps: int = 4) -> dict:
    """Seconds per mixed-precision SFT step (median after the first) and peak memory, gradient
    checkpointing on, `sequences` x `length` tokens (a 1/16 prompt) in one micro-batch."""
    model = trainable_model(build(cfg, device, torch.bfloat16), None, FULL)
    prompt_len = length // 16
    examples = fsdp_check.random_examples(cfg["vocab_size"], sequences * steps, prompt_len, length - prompt_len)
    hp = fsdp_check.sft_config(LR, sequences, sequences)
    timer = fsdp_check.StepTimer(device)
    before = allocated(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rows = train_sft(model, fsdp_check.PAD, examples, hp, seed=0, loss_chunk=LOSS_CHUNK, on_step=timer)
    peak = gib(torch.cuda.max_memory_allocated()) if device.type == "cuda" else None
    parameters = sum(p.numel() for p in model.parameters())
    return {
        "seconds_per_step": timer.median_after_first(),
        "step_seconds": timer.seconds,
        "tokens_per_s": sequences * length / timer.median_after_first(),
        "allocated_before_gib": before,  # the float32 masters
        "peak_gib": peak,
        "peak_bytes_per_parameter": peak * 2**30 / parameters if peak is not None else None,
        "update_changed": [r["update_changed"] for r in rows],
    }


def mixed_precision_step(cfg, device, scale) -> dict:
    result = {"comparison": attempt(device, {}, lambda: compare_steps(cfg, device, scale))}
    result["timing"] = [
        attempt(
            device,
            {"sequences": n, "tokens": length // scale, "gradient_checkpointing": True, "loss_chunk": LOSS_CHUNK},
            lambda n=n, length=length: step_timing(cfg, device, n, length // scale),
        )
        for n, length in ((1, 8192), (4, 2048))
    ]
    return result


# ---- 2. FSDP with one rank: fsdp_check.compare -------------------------------------------------------


# ---- 3. the chunked distillation loss at the paper's shape -----------------------------------------


def loss_from_hidden(student, teacher, cfg, device, length: int, chunk: int, repeats: int) -> dict:
    """SDPO's loss over `length` positions from random final hidden states (float32 for the masters'
    final norm, bf16 for the teacher), forward and backward, `chunk` positions at a time."""
    _, _, completion, in_e = distill_at_scale.rollout(cfg["vocab_size"], length, device)
    ids = torch.tensor([completion], device=device)
    mask = torch.ones_like(ids, dtype=torch.bool)
    gen = torch.Generator(device=device).manual_seed(2)
    hidden = torch.randn(1, length, cfg["hidden_size"], device=device, generator=gen).requires_grad_(True)
    teacher_hidden = torch.randn(1, length, cfg["hidden_size"], device=device, generator=gen, dtype=torch.bfloat16)

    def run():
        student.zero_grad(set_to_none=True)
        hidden.grad = None
        distill_at_scale.distill_loss(student, teacher, hidden, teacher_hidden, ids, mask, in_e, chunk)

    before = allocated(device)
    seconds, peak = timed(run, device, repeats)
    return {
        "seconds": seconds,
        "positions_per_s": length / seconds,
        "peak_gib": peak,
        "peak_above_models_gib": peak - before if peak is not None else None,
    }


def whole_step(student, teacher, cfg, device, length: int, chunk: int, prompt_len: int) -> dict:
    prompt, teacher_prompt, completion, in_e = distill_at_scale.rollout(cfg["vocab_size"], length, device, prompt_len)

    def run():
        student.zero_grad(set_to_none=True)
        distill_at_scale.step(student, teacher, prompt, teacher_prompt, completion, chunk, in_e)

    seconds, peak = timed(run, device)
    return {"seconds": seconds, "completion_tokens_per_s": length / seconds, "peak_gib": peak}


def chunked_distillation_loss(cfg, device, scale) -> dict:
    length, chunk, vocab = 20480 // scale, LOSS_CHUNK // scale, cfg["vocab_size"]
    student, teacher = distill_at_scale.models(cfg, "full", chunk, device, torch.bfloat16)
    result = {
        "completion_positions": length,
        "vocab": vocab,
        "loss": "generalized JSD alpha=0.5, student's top-100 + tail, preserve",
        "models": "student: float32 masters under autocast (bf16); frozen teacher: bf16",
        "modelled": {  # the loss holds several such tensors at once (logits, log-probs, their gradients)
            "one_float32_logits_all_positions_gib": gib(length * vocab * 4),
            "one_float32_logits_one_chunk_gib": gib(chunk * vocab * 4),
        },
        "models_allocated_gib": allocated(device),
    }
    size = {"positions": length, "loss_chunk": chunk}
    result["loss_chunked"] = attempt(
        device, size, lambda: loss_from_hidden(student, teacher, cfg, device, length, chunk, 3)
    )
    size = {"positions": length, "loss_chunk": length}
    result["loss_all_at_once"] = attempt(
        device, size, lambda: loss_from_hidden(student, teacher, cfg, device, length, length, 1)
    )
    prompt_len = 512 // scale
    size = {"completion_tokens": length, "student_prompt_tokens": prompt_len, "teacher_prompt_tokens": 2 * prompt_len}
    result["whole_step_chunked"] = attempt(
        device,
        {**size, "loss_chunk": chunk},
        lambda: whole_step(student, teacher, cfg, device, length, chunk, prompt_len),
    )
    return result


# ---- the run ------------------------------------------------------------------------------------


def checks(result: dict) -> dict:
    """The verdicts: each bound stated beside it."""
    verdicts = {}
    comparison = result.get("mixed_precision_step", {}).get("comparison", {})
    if "mixed_precision" in comparison:
        mixed, pure = comparison["mixed_precision"], comparison["pure_bf16_negative_control"]
        verdicts[f"mixed update within {MIXED_MAX_ERROR} of float32's, > {MIXED_MIN_CHANGED} of weights changed"] = (
            mixed["relative_error_to_float32"] < MIXED_MAX_ERROR and mixed["changed_all_weights"] > MIXED_MIN_CHANGED
        )
        verdicts[f"pure bf16 (negative control) off by > {PURE_MIN_ERROR}, < {PURE_MAX_CHANGED} of weights changed"] = (
            pure["relative_error_to_float32"] > PURE_MIN_ERROR and pure["changed_all_weights"] < PURE_MAX_CHANGED
        )
    fsdp = result.get("fsdp_one_rank", {})
    if "within_tolerances" in fsdp:
        verdicts["FSDP at one rank gives the plain process's losses and update"] = fsdp["within_tolerances"]
        verdicts["both compute in bf16 (autocast; FSDP's MixedPrecisionPolicy)"] = fsdp["computes_in_bf16"]
    loss = result.get("chunked_distillation_loss", {})
    if "loss_chunked" in loss:
        verdicts["chunked loss ran, its memory below one all-positions float32 logits tensor"] = (
            "error" not in loss["loss_chunked"]
            and (loss["loss_chunked"]["peak_above_models_gib"] or 0)
            < loss["modelled"]["one_float32_logits_all_positions_gib"]
        )
    verdicts["no part or size failed (out of memory: only the all-at-once loss may)"] = not errors(result)
    return verdicts


def errors(node, path="") -> list[str]:
    """Where the results record an error, except the all-at-once loss running out of memory (it may)."""
    if isinstance(node, list):
        return [e for i, item in enumerate(node) for e in errors(item, f"{path}[{i}]")]
    if not isinstance(node, dict):
        return []
    allowed = path.endswith("loss_all_at_once") and node.get("error") == "out of memory"
    found = [path] if "error" in node and not allowed else []
    return found + [e for key, value in node.items() for e in errors(value, f"{path}.{key}")]


def write(result: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model on CPU: checks the script, not the GPU")
    parser.add_argument("--parts", default="1,2,3", help="which parts to run (comma-separated: 1, 2, 3)")
    parser.add_argument("--out", default=str(ROOT / "bench/results/precision_check.json"))
    args = parser.parse_args()
    import transformers

    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    if device.type != "cuda" and not args.tiny:
        sys.exit("no CUDA device: run on a GPU machine, or pass --tiny to check the script on CPU")
    cfg, scale = (TINY, 64) if args.tiny else (QWEN3_1_7B, 1)  # sequence lengths divided by `scale` on CPU
    out, parts, start = Path(args.out), set(args.parts.split(",")), time.perf_counter()
    result = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        "model": "tiny Qwen3 (script check)" if args.tiny else "Qwen3-1.7B architecture, random init, created in bf16",
        "versions": {
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
        "float32_matmul_precision": torch.get_float32_matmul_precision(),  # "highest": no TF32 in the reference
    }
    parts_run = (
        ("1", "mixed_precision_step", lambda: mixed_precision_step(cfg, device, scale)),
        ("2", "fsdp_one_rank", lambda: fsdp_check.compare(args.tiny, ranks=1, out=out)),
        ("3", "chunked_distillation_loss", lambda: chunked_distillation_loss(cfg, device, scale)),
    )
    for number, name, run in parts_run:
        if number in parts:
            print(f"[{time.perf_counter() - start:6.1f} s] part {number}: {name}", flush=True)
            result[name] = attempt(device, {}, run)
            result["seconds_total"] = time.perf_counter() - start
            write(result, out)
    result["checks"] = checks(result)
    write(result, out)
    print(json.dumps(result["checks"], indent=1))
    print(f"[{time.perf_counter() - start:6.1f} s] wrote {out}")
    sys.exit(0 if all(result["checks"].values()) else 1)


if __name__ == "__main__":
    main()
