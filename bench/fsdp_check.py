"""Sharded full fine-tuning (training.processes, FSDP2) on the GPUs of this machine, with timings.

A randomly initialized model with Qwen3-1.7B's architecture, created in bf16 (nothing downloaded)
and fully fine-tuned as training does it (float32 masters computing in bf16: `selfdistill.precision`),
trains 4 SFT steps of 4 x 2,048 tokens (micro-batches of 1, gradient checkpointing) through this
project's `train_sft`, twice: as one plain process (autocast), and as one rank per GPU (torchrun,
nccl, FSDP2 with the project's MixedPrecisionPolicy: weights gathered in bf16, gradients reduced in
float32). With one GPU the lone rank is sharded all the same (`distributed.fully_shard_model`;
`distributed.shard` leaves a lone process as it is, so without this nothing would be sharded). Both
must log the same losses and make the same update (a fixed sample of the weights, before and after),
within bf16 tolerances; the dtypes inside a decoder layer's forward, the times per step and the peak
memory per GPU are recorded.

    python bench/fsdp_check.py          # on a CUDA machine; writes bench/results/fsdp_check.json
    python bench/fsdp_check.py --tiny   # a 2-layer model, 2 ranks on CPU (gloo): checks the script
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selfdistill import distributed, precision  # noqa: E402
from selfdistill.settings.methods import SFTConfig  # noqa: E402
from selfdistill.settings.training import TrainingConfig  # noqa: E402
from selfdistill.train.model import trainable_model  # noqa: E402
from selfdistill.train.sft import train_sft  # noqa: E402

from gpu_check import QWEN3_1_7B, TINY, build  # noqa: E402

# bf16 compute on two paths (autocast with a float32 residual stream; FSDP's bf16 parameters): the
# losses differ by rounding (3e-5 relative on the tiny model on CPU). A broken update (none, doubled
# or negated) moves the sampled weights by a relative error of 1 or more; bf16 rounding flips the
# sign of small gradients (0.07 on the tiny model).
LOSS_TOLERANCE = 2e-2
UPDATE_TOLERANCE = 0.5
SAMPLE_PER_TENSOR = 4096


def sampled_weights(model) -> torch.Tensor:
    """A fixed sample of every trainable weight (evenly spaced entries of the whole tensor, gathered
    from its shards: the same entries whatever the number of ranks), float64 on the CPU."""
    parts = []
    for p in model.parameters():
        if p.requires_grad:
            whole = distributed.full(p.detach()).reshape(-1)
            index = torch.linspace(0, whole.numel() - 1, min(whole.numel(), SAMPLE_PER_TENSOR), device=whole.device)
            parts.append(whole[index.long()].double().cpu())
    return torch.cat(parts)


PAD = SimpleNamespace(pad_token_id=0)  # the tokenizer's field train_sft reads


def random_examples(vocab: int, count: int, prompt_len: int, completion_len: int) -> list[tuple[list, list]]:
    """`count` SFT examples (prompt ids, completion ids) of random tokens."""
    gen = torch.Generator().manual_seed(1)

    def ids(n):
        return torch.randint(3, vocab, (n,), generator=gen).tolist()

    return [(ids(prompt_len), ids(completion_len)) for _ in range(count)]


def sft_config(lr: float, batch_size: int, micro_batch_size: int) -> SFTConfig:
    return SFTConfig(
        select_per_problem=1,
        lr=lr,
        weight_decay=0.0,
        epochs=1,
        batch_size=batch_size,
        micro_batch_size=micro_batch_size,
        max_grad_norm=1.0,
        checkpoint_every=0,
    )


class StepTimer:
    """train_sft's `on_step`: wall seconds per optimizer step (the first includes the warm-up)."""

    def __init__(self, device):
        self.device, self.seconds, self.last = device, [], time.perf_counter()

    def __call__(self, row, total):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        now = time.perf_counter()
        self.seconds.append(now - self.last)
        self.last = now

    def median_after_first(self) -> float:
        return statistics.median(self.seconds[1:])


def relative_error(update: torch.Tensor, reference: torch.Tensor) -> float:
    return float((update - reference).norm() / reference.norm())


def example_length(tiny: bool) -> int:
    """Prompt and completion tokens each: 4 x 2,048 tokens per step."""
    return 16 if tiny else 1024


def train(tiny: bool, sharded: bool) -> tuple[dict, torch.Tensor]:
    """4 full fine-tuning steps: per-step loss, wall time, peak GPU memory and the dtypes a decoder
    layer computes with; and the update of the sampled weights."""
    if distributed.is_rank_process():
        distributed.init()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    arch = TINY if tiny else QWEN3_1_7B
    full = TrainingConfig(finetune="full", gradient_checkpointing=True, loss_chunk=1024, processes=1)
    model = trainable_model(build(arch, device, torch.bfloat16), None, full)
    if sharded and distributed.world_size() == 1:
        distributed.fully_shard_model(model)
    seen = []  # the weight and output dtypes of a decoder layer's matmul in each forward
    down_proj = model.model.layers[0].mlp.down_proj
    hook = down_proj.register_forward_hook(lambda m, args, out: seen.append((str(m.weight.dtype), str(out.dtype))))
    examples = random_examples(arch["vocab_size"], 16, example_length(tiny), example_length(tiny))
    timer = StepTimer(device)
    before = sampled_weights(model)
    rows = train_sft(model, PAD, examples, sft_config(1e-5, 4, 1), seed=0, loss_chunk=1024, on_step=timer)
    update = sampled_weights(model) - before
    hook.remove()
    result = {
        "ranks": distributed.world_size(),
        "sharded": sharded,
        "autocast": isinstance(precision.autocast(model), torch.autocast),  # on at one rank, even sharded
        "master_dtype": str(down_proj.weight.dtype),
        "layer_forward_dtypes": dict(zip(("weight", "output"), seen[0], strict=True)),
        "losses": [r["loss"] for r in rows],
        "update_changed": [r["update_changed"] for r in rows],
        "step_seconds": timer.seconds,
        "median_step_seconds_after_first": timer.median_after_first(),
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
    }
    return result, update


def compare(tiny: bool, ranks: int, out: Path) -> dict:
    """The plain process (here) against `ranks` FSDP ranks (torchrun); `out` names their scratch files."""
    plain, plain_update = train(tiny, sharded=False)
    print(json.dumps({"plain": plain}), flush=True)
    gc.collect()
    torch.cuda.empty_cache()  # the ranks need the memory the plain run cached
    length = example_length(tiny)
    rank_out = out.with_suffix(".ranks.json")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks), __file__]
    cmd += ["--rank-out", str(rank_out)] + (["--tiny"] if tiny else [])
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    sharded = json.loads(rank_out.read_text())
    sharded_update = torch.load(rank_out.with_suffix(".pt"))
    rank_out.unlink()
    rank_out.with_suffix(".pt").unlink()
    gap = max(abs(a - b) / abs(a) for a, b in zip(plain["losses"], sharded["losses"], strict=True))
    update_error = relative_error(sharded_update, plain_update)
    # Both compute in bf16: the plain process under autocast, the ranks with FSDP's bf16 parameters.
    bf16 = plain["layer_forward_dtypes"]["output"] == sharded["layer_forward_dtypes"]["weight"] == "torch.bfloat16"
    return {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "setting": ("tiny Qwen3 (script check)" if tiny else "Qwen3-1.7B architecture, random init")
        + ", created in bf16, full fine-tuning as float32 masters with bf16 compute, gradient checkpointing, "
        f"AdamW lr 1e-5, 4 steps of 4 x {2 * length} tokens in micro-batches of 1",
        "plain": plain,
        "fsdp": sharded,
        "max_relative_loss_gap": gap,
        "sampled_update_relative_error": update_error,
        "sampled_weights": len(plain_update),
        "tolerances": {"relative_loss_gap": LOSS_TOLERANCE, "update_relative_error": UPDATE_TOLERANCE},
        "computes_in_bf16": bf16,
        "within_tolerances": gap < LOSS_TOLERANCE and update_error < UPDATE_TOLERANCE,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--rank-out", help="(internal) where a rank writes its result")
    parser.add_argument("--out", help="result file (default: bench/results/fsdp_check[_tiny].json)")
    args = parser.parse_args()
    if args.rank_out:
        result, update = train(args.tiny, sharded=True)
        if distributed.rank() == 0:
            torch.save(update, Path(args.rank_out).with_suffix(".pt"))
            Path(args.rank_out).write_text(json.dumps(result))
        return
    out = Path(args.out or ROOT / "bench/results" / ("fsdp_check_tiny.json" if args.tiny else "fsdp_check.json"))
    result = compare(args.tiny, torch.cuda.device_count() or 2, out)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    assert result["within_tolerances"], "FSDP's losses or update differ from one process's beyond the tolerances"
    assert result["computes_in_bf16"], "the plain process or the FSDP ranks do not compute in bf16"


if __name__ == "__main__":
    main()
