"""A training job killed with SIGKILL and run again resumes and ends exactly like an uninterrupted run.

Each run is a real child process training the tiny model (on-policy self-distillation with an EMA
teacher, whose state must survive too; GRPO; SFT); the test kills it at several points.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

STEPS = 5
JOB = """
import json, sys, time
from dataclasses import replace
import pandas as pd, torch
sys.path.insert(0, "tests")
from configs import GRADING, LORA, TEMPLATES, rollout_hp, run_rollouts, sft_hp
from selfdistill.models import load_model, load_tokenizer
from selfdistill.train.model import add_lora

model_dir, work, method = sys.argv[1], sys.argv[2], sys.argv[3]
subset = pd.DataFrame({"problem_id": ["a", "b", "c"], "problem": ["Compute 2+3+4.", "Compute 5+5+1.", "Compute 7+1+1."],
                       "answer": ["9", "11", "9"], "solution": ["<think>2+3=5. 5+4=9.</think> \\\\boxed{9}"] * 3})
torch.manual_seed(0)
model, tok = add_lora(load_model(model_dir), LORA), load_tokenizer(model_dir)
on_step = lambda r, total: (print(r["step"], flush=True), time.sleep(0.5))  # a window to kill in
if method == "sft":
    from selfdistill import prompts
    from selfdistill.train.sft import train_sft
    examples = [(prompts.prompt_ids(tok, f"Compute {i}+{i}+1."),
                 tok.encode(f"<think>{i}+{i}={2*i}.</think> \\boxed{{{2*i+1}}}") + [tok.eos_token_id])
                for i in range(STEPS)]
    hp = sft_hp(batch_size=1, micro_batch_size=1, epochs=1, checkpoint_every=1)
    rows = train_sft(model, tok, examples, hp, seed=3, loss_chunk=4, on_step=on_step, state_path=f"{work}/state.pt")
else:
    hp = rollout_hp(method, steps=STEPS, prompts_per_step=2, n_rollouts=2, checkpoint_every=1,
                    **({"teacher": "ema"} if method == "onpolicy" else {}))
    rows = run_rollouts(model, tok, subset, method, "solution", "standard", hp, seed=3, state_path=f"{work}/state.pt",
                        on_step=on_step)
torch.save({n: p for n, p in model.named_parameters() if p.requires_grad}, f"{work}/final.pt")
json.dump(rows, open(f"{work}/rows.json", "w"))
""".replace("STEPS", str(STEPS))
ROOT = Path(__file__).resolve().parents[1]


def start(script, model_dir, work, method):
    return subprocess.Popen(
        [sys.executable, str(script), model_dir, str(work), method],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def saved_step(work) -> int:
    path = Path(work) / "state.pt"
    return torch.load(path, weights_only=False)["step"] if path.exists() else 0


def run_to_end(script, model_dir, work, method):
    """Final parameters, log rows, and the steps this process itself trained."""
    proc = start(script, model_dir, work, method)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    trained = [int(line) for line in out.split()]
    return torch.load(Path(work) / "final.pt"), json.loads((Path(work) / "rows.json").read_text()), trained


@pytest.mark.parametrize("method", ["onpolicy", "grpo", "sft"])
def test_sigkill_then_rerun_resumes_to_the_uninterrupted_result(tiny_model_dir, tmp_path, method):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    reference = tmp_path / "reference"
    reference.mkdir()
    expected_params, expected_rows, trained = run_to_end(script, tiny_model_dir, reference, method)
    assert trained == list(range(STEPS))

    work = tmp_path / "killed"
    work.mkdir()
    for kill_after in (1, 3):  # kill once a state at this step is on disk, then again later
        proc = start(script, tiny_model_dir, work, method)
        deadline = time.time() + 300
        while saved_step(work) < kill_after and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the job finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        assert kill_after <= saved_step(work) < STEPS
        assert not (work / "final.pt").exists()
    resume_at = saved_step(work)
    params, rows, trained = run_to_end(script, tiny_model_dir, work, method)

    assert trained == list(range(resume_at, STEPS))  # the re-run did only the steps left
    assert [r["step"] for r in rows] == list(range(STEPS))  # every step logged once
    assert rows == expected_rows
    assert params.keys() == expected_params.keys()
    for name in params:
        assert torch.equal(params[name], expected_params[name]), name


def test_no_state_is_left_torn(tmp_path):
    """The state file is replaced by rename: a reader sees the old or the new one, never a partial."""
    from selfdistill.train import state

    path = tmp_path / "state.pt"
    state.save(path, {"step": 1})
    state.save(path, {"step": 2})
    assert torch.load(path, weights_only=False) == {"step": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]


GENERATION_JOB = """
import sys, time
import pandas as pd
from selfdistill.backends import Sampling
from selfdistill.backends.hf import HFBackend
from selfdistill.generation import generate_table
from selfdistill.settings.grading import GradingConfig

class Slow(HFBackend):  # a window to kill in, between shards
    def generate(self, *args, **kwargs):
        time.sleep(0.5)
        print("generating", flush=True)
        return super().generate(*args, **kwargs)

model_dir, work = sys.argv[1], sys.argv[2]
base = HFBackend.load(model_dir)
problems = pd.DataFrame({"problem_id": list("abcde"), "problem": [f"Compute {i}+{i}+1." for i in range(5)],
                         "answer": [str(2 * i + 1) for i in range(5)]})
table = generate_table(Slow(base.model, base.tokenizer), problems, problems["problem"].tolist(),
                       Sampling(n=3, temperature=1.0, max_new_tokens=16, seed=4),
                       GradingConfig(workers=1, timeout_s=10, max_answer_chars=1000),
                       shard_problems=2, shard_dir=f"{work}/shards")
table.to_parquet(f"{work}/table.parquet")
"""


def test_generation_killed_between_shards_reuses_finished_shards(tiny_model_dir, tmp_path):
    import pandas as pd

    script = tmp_path / "gen.py"
    script.write_text(GENERATION_JOB)

    def run(work):
        proc = subprocess.run(
            [sys.executable, str(script), tiny_model_dir, str(work)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return pd.read_parquet(work / "table.parquet"), proc.stdout.count("generating")

    reference, calls = run(tmp_path)
    assert calls == 3  # 5 problems in shards of 2

    work = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(script), tiny_model_dir, str(work)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while not (work / "shards/shard00001.parquet").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (work / "table.parquet").exists()
    assert sorted(p.name for p in (work / "shards").iterdir()) == ["shard00000.parquet", "shard00001.parquet"]

    table, calls = run(work)
    assert calls == 1  # only the unfinished shard was generated again
    pd.testing.assert_frame_equal(table, reference)


@pytest.mark.parametrize("save_every_s", [0.0, 3600.0])
@pytest.mark.parametrize("method", ["onpolicy", "sft"])
def test_state_is_also_saved_by_wall_time(tiny_model_dir, tmp_path, monkeypatch, method, save_every_s):
    """With no checkpoint due by step count, resumable state is still saved once SAVE_EVERY_S has
    passed (at paper scale 10 steps take hours); the hourly default saves nothing in a short run."""
    import pandas as pd

    from selfdistill import prompts
    from selfdistill.models import load_model, load_tokenizer
    from selfdistill.train import state
    from selfdistill.train.model import add_lora
    from selfdistill.train.sft import train_sft

    from configs import LORA, rollout_hp, run_rollouts, sft_hp

    monkeypatch.setattr(state, "SAVE_EVERY_S", save_every_s)
    torch.manual_seed(0)
    model, tok = add_lora(load_model(tiny_model_dir), LORA), load_tokenizer(tiny_model_dir)
    path = tmp_path / "state.pt"
    if method == "sft":
        examples = [(prompts.prompt_ids(tok, "Compute 1+1+1."), tok.encode("\\boxed{3}") + [tok.eos_token_id])] * 2
        hp = sft_hp(batch_size=1, micro_batch_size=1, epochs=1, checkpoint_every=0)
        train_sft(model, tok, examples, hp, seed=3, loss_chunk=4, state_path=path)
    else:
        subset = pd.DataFrame({"problem_id": ["a"], "problem": ["Compute 2+3+4."], "answer": ["9"], "solution": ["9"]})
        hp = rollout_hp(method, steps=2, prompts_per_step=1, n_rollouts=2, checkpoint_every=0)
        run_rollouts(model, tok, subset, method, "solution", "standard", hp, seed=3, state_path=path)
    assert path.exists() == (save_every_s == 0.0)
    if path.exists():
        assert saved_step(tmp_path) == 2


def test_the_save_clock_restarts_at_each_save(monkeypatch):
    """Saved by time, then not again until another SAVE_EVERY_S has passed (a clock that never
    restarted would save every step after the first hour: 48 GB per step for an 8B model)."""
    from selfdistill.train import state

    monkeypatch.setattr(state, "SAVE_EVERY_S", 10.0)
    now = iter([0.0, 5.0, 11.0, 11.0, 12.0, 25.0, 25.0, 26.0])
    schedule = state.SaveSchedule(every=0, clock=lambda: next(now))
    assert [schedule.due(step) for step in (1, 2, 3, 4, 5)] == [False, True, False, True, False]
    by_count = state.SaveSchedule(every=2, clock=lambda: 0.0)
    assert [by_count.due(step) for step in (1, 2, 3, 4)] == [False, True, False, True]
