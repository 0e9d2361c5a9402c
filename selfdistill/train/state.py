"""Resumable training state: everything a run needs to continue exactly where it stopped.

Written atomically (temporary file, then rename) every k steps and at least hourly
(`SaveSchedule`), so a job killed at any moment leaves either the previous state or the new one,
never a torn file. Lives beside, not inside, the job's declared outputs: Snakemake deletes
incomplete outputs before a re-run.
"""

from __future__ import annotations

import os
import random
import time

import torch

from selfdistill import distributed


def capture(model, optimizer, step: int, rng: random.Random, **extra) -> dict:
    return {
        "step": step,
        "trainable": {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad},
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "python_rng": rng.getstate(),
        **extra,
    }


SAVE_EVERY_S = 3600.0  # at the paper's scale 10 steps can take 16 h: a time-limit kill then loses at most an hour


class SaveSchedule:
    """When to save resumable state: every `every` steps (0: never by count), and whenever
    SAVE_EVERY_S of wall time passed since the last save, by rank 0's clock so every rank saves
    together. The state is exact, so when it is saved changes no result."""

    def __init__(self, every: int, clock=time.monotonic):
        self.every, self.clock = every, clock
        self.last = clock()

    def due(self, done: int) -> bool:
        """Whether to save after `done` steps; a yes restarts the clock (the caller saves now)."""
        late = self.clock() - self.last >= SAVE_EVERY_S if distributed.rank() == 0 else None
        if bool(self.every and done % self.every == 0) or distributed.broadcast(late):
            self.last = self.clock()
            return True
        return False


def save(path, state: dict) -> None:
    path = distributed.rank_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    distributed.barrier()  # ranks replace their files together (restore refuses shards of different steps)
    os.replace(tmp, path)


def restore(path, model, optimizer, rng: random.Random) -> dict | None:
    """Load the state at `path` into model / optimizer / RNGs; returns it (None: start fresh)."""
    path = distributed.rank_file(path)
    state = torch.load(path, weights_only=False) if path is not None and path.exists() else None
    steps = distributed.all_gather(state and state["step"])
    if len(set(steps)) > 1:  # a kill between two ranks' renames: their shards are of different steps
        raise RuntimeError(
            f"the ranks' saved training states are of different steps {steps}; delete {path.parent} "
            "and re-run (training starts over)"
        )
    if state is None:
        return None
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state["trainable"].items():
            params[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    rng.setstate(state["python_rng"])
    return state
