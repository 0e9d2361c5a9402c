"""Live training metrics: a log line per step with ETA, and TensorBoard event files."""

import logging

import pytest

from selfdistill.train.progress import Progress


def scalars(directory, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(directory))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def test_a_line_per_step_with_eta_and_tensorboard_scalars(tmp_path, caplog):
    pytest.importorskip("tensorboard")
    progress = Progress(tmp_path / "tb")
    with caplog.at_level(logging.INFO, logger="train"):
        for step in range(3):
            progress({"step": step, "loss": 1.0 / (step + 1), "reward": 0.25 * step}, total=10)
    progress.close()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("step 1/10 loss 1 reward 0 |") and "ETA" in lines[0]
    assert lines[2].startswith("step 3/10 loss 0.3333 reward 0.5 |")
    steps, values = zip(*scalars(tmp_path / "tb", "train/loss"), strict=True)
    assert steps == (1, 2, 3) and values == pytest.approx([1.0, 0.5, 1 / 3])


def test_a_resumed_run_continues_the_curve_and_a_fresh_one_starts_over(tmp_path):
    pytest.importorskip("tensorboard")
    first = Progress(tmp_path / "tb")
    for step in range(4):  # this attempt logged steps 1-4, then was killed; its state was saved at step 2
        first({"step": step, "loss": float(step)}, total=6)
    first.close()
    resumed = Progress(tmp_path / "tb")
    for step in range(2, 6):
        resumed({"step": step, "loss": 10.0 + step}, total=6)
    resumed.close()
    assert scalars(tmp_path / "tb", "train/loss") == [(1, 0.0), (2, 1.0), (3, 12.0), (4, 13.0), (5, 14.0), (6, 15.0)]
    fresh = Progress(tmp_path / "tb")
    fresh({"step": 0, "loss": 7.0}, total=6)
    fresh.close()
    assert scalars(tmp_path / "tb", "train/loss") == [(1, 7.0)]
