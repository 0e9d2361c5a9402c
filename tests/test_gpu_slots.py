"""GPU slot claiming with real concurrent processes and virtual device slots."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from selfdistill import gpu_slots

HOLD = """
import json, sys, time
from selfdistill.gpu_slots import claim
lock_dir, devices, n, hold = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3]), float(sys.argv[4])
ids = claim(n, devices, lock_dir, poll_s=0.02)
start = time.time()
print(json.dumps({"ids": ids, "start": start}), flush=True)
time.sleep(hold)
print(json.dumps({"end": time.time()}), flush=True)
"""


def spawn(lock_dir, devices, n, hold):
    return subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock_dir), ",".join(devices), str(n), str(hold)],
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("slots,jobs,per_job", [(2, 6, 1), (3, 5, 2)])
def test_concurrent_jobs_never_share_a_slot(tmp_path, slots, jobs, per_job):
    devices = [str(i) for i in range(slots)]
    procs = [spawn(tmp_path, devices, per_job, 0.4) for _ in range(jobs)]
    spans = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        first, second = (json.loads(line) for line in out.splitlines())
        spans.append((set(first["ids"]), first["start"], second["end"]))
    for ids, _, _ in spans:
        assert len(ids) == per_job and ids <= set(devices)
    for i, (ids_a, start_a, end_a) in enumerate(spans):
        for ids_b, start_b, end_b in spans[i + 1 :]:
            if start_a < end_b and start_b < end_a:  # held at the same time
                assert not ids_a & ids_b
    # Jobs beyond the slots waited: the run took at least ceil(jobs / concurrent) hold times.
    concurrent = slots // per_job
    assert max(e for *_, e in spans) - min(s for _, s, _ in spans) >= 0.4 * (-(-jobs // concurrent)) - 0.1


def test_a_killed_job_frees_its_slot(tmp_path):
    holder = spawn(tmp_path, ["0"], 1, 60)
    assert json.loads(holder.stdout.readline())["ids"] == ["0"]
    with pytest.raises(TimeoutError):
        gpu_slots.claim(1, ["0"], tmp_path, poll_s=0.02, timeout_s=0.3)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    t = time.time()
    assert gpu_slots.claim(1, ["0"], tmp_path, poll_s=0.02, timeout_s=5) == ["0"]
    assert time.time() - t < 1
    gpu_slots.release()


def test_more_gpus_than_exist_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="asks for 3 GPUs but only 2 exist"):
        gpu_slots.claim(3, ["0", "1"], tmp_path)


def test_claim_for_job_sets_cuda_visible_devices(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    gpu_slots.claim_for_job(1, tmp_path)
    assert os.environ["CUDA_VISIBLE_DEVICES"] in ("4", "5")
    gpu_slots.release()
