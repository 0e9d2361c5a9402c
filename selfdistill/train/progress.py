"""Live training metrics: a log line per step (step/total, the step's metrics, ETA) and, when the
`tensorboard` package is installed, TensorBoard event files, so a 6-hour GPU run can be watched."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from selfdistill import distributed

log = logging.getLogger("train")

# Shown in the log line, in this order, when a step's row has them.
SHOWN = ("loss", "reward", "mean_length", "epistemic_count", "divergence", "grad_norm", "masked_fraction")


class Progress:
    """on_step callback of the training loops: `progress(row, total)` after every step.

    tensorboard_dir: where event files go (`tensorboard --logdir results/`); a fresh run empties
    it, a resumed one continues it (the steps an earlier attempt logged past the resume point are
    purged). Only rank 0 writes them: the ranks log the same all-reduced metrics, and a second
    writer would race the first (one rank's fresh-run emptying deleted the other's open file).
    The ETA counts from the first step this process trains.
    """

    def __init__(self, tensorboard_dir=None):
        self.tensorboard_dir, self.writer = tensorboard_dir, None
        self.first_step, self.started = None, time.monotonic()

    def __call__(self, row: dict, total: int) -> None:
        if self.first_step is None:
            self.first_step = row["step"]
            self.writer = _writer(self.tensorboard_dir, self.first_step)
        done = row["step"] + 1 - self.first_step
        per_step = (time.monotonic() - self.started) / done
        eta = per_step * (total - row["step"] - 1)
        shown = " ".join(f"{key} {row[key]:.4g}" for key in SHOWN if key in row)
        log.info("step %d/%d %s | %.1f s/step, ETA %s", row["step"] + 1, total, shown, per_step, _duration(eta))
        if self.writer is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"train/{key}", value, row["step"] + 1)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _writer(directory, first_step: int):
    """A TensorBoard writer, or None without a directory, on ranks other than 0, or without the
    tensorboard package."""
    if directory is None or distributed.rank() != 0:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch's writer needs the tensorboard package
        return None
    if first_step == 0:
        shutil.rmtree(directory, ignore_errors=True)
    return SummaryWriter(str(Path(directory)), purge_step=first_step + 1 if first_step else None)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
