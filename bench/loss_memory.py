"""Memory of the distillation loss against completion length: chunked vs all positions at once.

    python bench/loss_memory.py        # ~2 min on 2 cores; writes bench/results/loss_memory.json

The loss's own peak memory (what it allocates on top of the hidden states it starts from) for one
completion of 2,048 and 8,192 positions, a 32,768-id vocabulary, hidden size 256, SDPO's loss
(generalized JSD, alpha 0.5, over the full vocabulary, `preserve` ablation), forward and backward:
through `backward_in_chunks` with 512 positions per chunk, and with one chunk holding every
position (what computing the loss over the whole completion at once costs). Each case runs in a
fresh process; the peak is the process's maximum resident set size minus its size just before the
loss (CPU: large tensors are returned to the system when freed, so the peak is the loss's own).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VOCAB, HIDDEN, CHUNK = 32_768, 256, 512


def measure(length: int, chunk: int) -> float:
    """Peak MB the loss adds, in this process."""
    from types import SimpleNamespace

    import torch

    from selfdistill.train.objectives import distill_token_loss
    from selfdistill.train.step import backward_in_chunks

    torch.manual_seed(0)
    torch.set_num_threads(2)
    head = torch.nn.Linear(HIDDEN, VOCAB, bias=False)
    hidden = torch.randn(1, length, HIDDEN, requires_grad=True)
    teacher_hidden = torch.randn(1, length, HIDDEN)
    ids = torch.randint(0, VOCAB, (1, length))
    mask = torch.ones(1, length, dtype=torch.bool)
    in_e = torch.zeros(VOCAB, dtype=torch.bool)
    in_e[:40] = True
    hp = SimpleNamespace(temperature=1.0, support="full", topk=100, alpha=0.5)

    def chunk_loss(h, positions):
        with torch.no_grad():
            teacher = head(teacher_hidden[:, positions])
        per_token, div = distill_token_loss(head(h), teacher, ids[:, positions], in_e, hp, "preserve")
        return (per_token * mask[:, positions]).sum(), (div * mask[:, positions]).sum()

    backward_in_chunks(hidden[:, :8], chunk_loss, 4, 1.0)  # warm up the allocator and kernels
    head.zero_grad()
    hidden.grad = None
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    import psutil

    current = psutil.Process().memory_info().rss / 1024
    backward_in_chunks(hidden, chunk_loss, chunk, 1.0 / length)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (max(after, before) - current) / 1024


def main():
    results = []
    for length in (2048, 8192):
        for name, chunk in (("chunked", CHUNK), ("all positions at once", length)):
            out = subprocess.run(
                [sys.executable, __file__, str(length), str(chunk)],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
            peak = float(out.stdout.strip().splitlines()[-1])
            results.append({"positions": length, "mode": name, "chunk": chunk, "loss_peak_mb": round(peak, 1)})
            print(f"{length:6d} positions, {name:22s} {peak:9.1f} MB")
    by = {(r["positions"], r["mode"]): r["loss_peak_mb"] for r in results}
    growth = {mode: by[(8192, mode)] / by[(2048, mode)] for mode in ("chunked", "all positions at once")}
    print(f"8k / 2k: chunked {growth['chunked']:.2f}x, all at once {growth['all positions at once']:.2f}x")
    out = {"vocab": VOCAB, "hidden": HIDDEN, "chunk": CHUNK, "results": results, "growth_8k_over_2k": growth}
    (ROOT / "bench/results/loss_memory.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    if len(sys.argv) == 3:
        print(measure(int(sys.argv[1]), int(sys.argv[2])))
    else:
        main()
