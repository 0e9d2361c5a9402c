"""Sharded full fine-tuning (training.processes, FSDP2) on the GPUs of this machine, with timings.

A randomly initialized model with Qwen3-1.7B's architecture (bf16, nothing downloaded) is fully
fine-tuned for 3 SFT steps of 4 x 2,048 tokens (micro-batches of 1, gradient checkpointing)
through this project's `train_sft`, twice: as one plain process, and as one rank per GPU
(torchrun, FSDP2 through `selfdistill.distributed`, nccl). Both must log the same losses (bf16
tolerance); the times per step and peak memory per GPU are recorded.

    python bench/fsdp_check.py          # on a CUDA machine; writes bench/results/fsdp_check.json
    python bench/fsdp_check.py --tiny   # a 2-layer model, 2 ranks on CPU (gloo): checks the script
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selfdistill import distributed  # noqa: E402
from selfdistill.settings.methods import SFTConfig  # noqa: E402
from selfdistill.settings.training import TrainingConfig  # noqa: E402
from selfdistill.train.model import trainable_model  # noqa: E402
from selfdistill.train.sft import train_sft  # noqa: E402

from gpu_check import QWEN3_1_7B, TINY  # noqa: E402


def build(arch: dict, dtype):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    model = Qwen3ForCausalLM(Qwen3Config(**arch)).to(dtype)
    return model.to("cuda") if torch.cuda.is_available() else model


def train(args) -> dict:
    """3 full fine-tuning steps; per-step loss, wall time, and this process's peak GPU memory."""
    if distributed.is_rank_process():
        distributed.init()
    arch = TINY if args.tiny else QWEN3_1_7B
    dtype = torch.float32 if args.tiny else torch.bfloat16
    full = TrainingConfig(finetune="full", gradient_checkpointing=True, loss_chunk=1024, processes=1)
    model = trainable_model(build(arch, dtype), None, full)
    gen = torch.Generator().manual_seed(1)
    length = 64 if args.tiny else 1024  # prompt and completion each: 4 x 2,048 tokens per step
    examples = [
        (
            torch.randint(3, arch["vocab_size"], (length,), generator=gen).tolist(),
            torch.randint(3, arch["vocab_size"], (length,), generator=gen).tolist(),
        )
        for _ in range(12)
    ]
    hp = SFTConfig(
        select_per_problem=1, lr=1e-5, epochs=1, batch_size=4, micro_batch_size=1, max_grad_norm=1.0, checkpoint_every=0
    )
    times, last = [], [time.perf_counter()]

    def on_step(row, total):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - last[0])
        last[0] = time.perf_counter()

    rows = train_sft(model, SimpleNamespace(pad_token_id=0), examples, hp, seed=0, loss_chunk=1024, on_step=on_step)
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    return {"losses": [r["loss"] for r in rows], "step_seconds": times, "peak_gib": peak}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--rank-out", help="(internal) where a rank writes its result")
    parser.add_argument("--out", help="result file (default: bench/results/fsdp_check[_tiny].json)")
    args = parser.parse_args()
    if args.rank_out:
        result = train(args)
        if distributed.rank() == 0:
            Path(args.rank_out).write_text(json.dumps({**result, "ranks": distributed.world_size()}))
        return
    ranks = torch.cuda.device_count() or 2
    plain = train(args)
    torch.cuda.empty_cache()  # the ranks need the memory the plain run cached
    out = Path(args.out or ROOT / "bench/results" / ("fsdp_check_tiny.json" if args.tiny else "fsdp_check.json"))
    rank_out = out.with_suffix(".ranks.json")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(ranks),
        __file__,
        "--rank-out",
        str(rank_out),
    ] + (["--tiny"] if args.tiny else [])
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    sharded = json.loads(rank_out.read_text())
    rank_out.unlink()
    gap = max(abs(a - b) / abs(a) for a, b in zip(plain["losses"], sharded["losses"], strict=True))
    result = {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "setting": "Qwen3-1.7B architecture, random init, bf16, full fine-tuning, gradient checkpointing, "
        "AdamW, 3 steps of 4 x 2,048 tokens in micro-batches of 1"
        if not args.tiny
        else "tiny",
        "plain": plain,
        "fsdp": sharded,
        "max_relative_loss_gap": gap,
    }
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    assert gap < (1e-4 if args.tiny else 2e-2), f"FSDP losses differ from one process by {gap:.2e}"


if __name__ == "__main__":
    main()
