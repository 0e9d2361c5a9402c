"""Which GPUs a job may use on a workstation.

Snakemake's `gpu` resource caps how many GPU jobs run at once (`--resources gpu=N`) but does not
say which device each one gets, and it does not set CUDA_VISIBLE_DEVICES. Each GPU job therefore
claims free device slots itself: one lock file per device, held with flock for the life of the
process, so the kernel releases it when the job exits or crashes (even on SIGKILL).
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)
_held = []  # open lock files: closing them (or dying) frees the slots


def visible_devices() -> list[str]:
    """The devices this workflow may use: CUDA_VISIBLE_DEVICES if set, else every GPU nvidia-smi lists."""
    if os.environ.get("CUDA_VISIBLE_DEVICES"):
        return os.environ["CUDA_VISIBLE_DEVICES"].split(",")
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]


def claim(n: int, devices: list[str], lock_dir, poll_s: float = 1.0, timeout_s: float | None = None) -> list[str]:
    """Take n free devices (waiting while fewer are free) and return their ids; they stay claimed
    until `release()` or the end of the process."""
    if n > len(devices):
        raise RuntimeError(f"a job asks for {n} GPUs but only {len(devices)} exist ({devices}): lower its gpu resource")
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    while True:
        taken = []
        for device in devices:
            handle = open(lock_dir / f"gpu{device}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            taken.append((device, handle))
            if len(taken) == n:
                _held.extend(h for _, h in taken)
                return [d for d, _ in taken]
        for _, handle in taken:  # not enough free: let others finish rather than hold a partial set
            handle.close()
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"no {n} free GPU slots among {devices} after {timeout_s} s")
        time.sleep(poll_s)


def release() -> None:
    while _held:
        _held.pop().close()


def claim_for_job(n: int, lock_dir) -> None:
    """Claim n GPUs and point CUDA_VISIBLE_DEVICES at them, before CUDA is initialized."""
    if "SLURM_JOB_ID" in os.environ:  # SLURM already gave this job its own GPUs
        return
    devices = visible_devices()
    if n <= 0 or not devices:
        return
    ids = claim(n, devices, lock_dir)
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(ids)
    log.info("claimed GPU(s) %s", ",".join(ids))
