import json
import os
import signal
import subprocess
import sys

import pandas as pd
import pytest

from selfdistill.io import atomic_path, config_hash, read_provenance, write_table
from selfdistill.provenance import main as provenance_main


def test_write_table_records_provenance(tmp_path):
    path = tmp_path / "t.parquet"
    write_table(pd.DataFrame({"a": [1, 2]}), path, {"lr": 0.1, "name": "x"}, seed=3)
    meta = read_provenance(path)
    assert meta["config"] == {"lr": 0.1, "name": "x"} and meta["seed"] == 3
    assert meta["config_hash"] == config_hash({"name": "x", "lr": 0.1})  # key order does not matter
    assert meta["code_version"] and "torch" in meta["packages"]
    assert pd.read_parquet(path)["a"].tolist() == [1, 2]


def test_provenance_command(tmp_path, capsys):
    path = tmp_path / "t.parquet"
    write_table(pd.DataFrame({"a": [1]}), path, {"k": 1})
    assert provenance_main([str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["config"] == {"k": 1}
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "plain.parquet")
    assert provenance_main([str(tmp_path / "plain.parquet")]) == 1


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "out.parquet"
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_killed_writer_never_leaves_a_complete_looking_file(tmp_path):
    """SIGKILL a process while it writes: the target name either does not exist or is complete."""
    path = tmp_path / "big.parquet"
    code = (
        "import pandas as pd, numpy as np, sys; from selfdistill.io import write_table\n"
        "df = pd.DataFrame({'x': np.arange(30_000_000)})\n"
        "print('ready', flush=True)\n"
        f"write_table(df, {str(path)!r}, {{}})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not path.exists() or len(pd.read_parquet(path)) == 30_000_000


def test_out_of_memory_errors_name_the_knobs_to_lower():
    import torch

    from selfdistill.jobs import oom_advice

    advice = oom_advice("train_rollouts", torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert "onpolicy/grpo.micro_batch_size" in advice and "support: topk" in advice
    vllm_style = RuntimeError("CUDA error: out of memory while allocating KV cache")
    assert "gpu_memory_utilization" in oom_advice("evaluate", vllm_style)
    assert "sft.micro_batch_size" in oom_advice("train_sft", torch.cuda.OutOfMemoryError())
    assert oom_advice("evaluate", ValueError("bad answer")) is None


def test_outputs_get_the_mode_the_umask_gives(tmp_path, tiny_model_dir):
    """Tables, text outputs and adapters are readable by the group under umask 022 (mkstemp and
    safetensors alone leave 0600, which hides results on a shared project directory)."""
    import os

    import pandas as pd

    from selfdistill.distributed import save_model
    from selfdistill.io import atomic_path, write_table
    from selfdistill.models import load_model
    from selfdistill.settings.training import LoraConfig
    from selfdistill.train.model import add_lora

    previous = os.umask(0o022)
    try:
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.parquet", {})
        with atomic_path(tmp_path / "findings.md") as tmp:
            tmp.write_text("x")
        model = add_lora(load_model(tiny_model_dir), LoraConfig(r=2, alpha=4, dropout=0.0, target_modules=("q_proj",)))
        save_model(model, tmp_path / "adapter")
        files = [tmp_path / "t.parquet", tmp_path / "findings.md", *(tmp_path / "adapter").iterdir()]
        assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {f.name: "0o644" for f in files}
        os.umask(0o077)  # and a private umask is respected too
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "private.parquet", {})
        assert (tmp_path / "private.parquet").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(previous)


def test_a_job_s_log_gets_no_upstream_deprecation_noise_but_every_other_warning(tiny_model_dir):
    """peft warns that transformers' `is_gradient_checkpointing` is deprecated each time it wraps a
    model: silenced for jobs, and only that one (without the filter it is raised: the control)."""
    import warnings

    from selfdistill.jobs import quiet_upstream_warnings
    from selfdistill.models import load_model
    from selfdistill.settings.training import LoraConfig
    from selfdistill.train.model import add_lora

    lora = LoraConfig(r=2, alpha=4, dropout=0.0, target_modules=("q_proj",))

    def caught(quiet: bool) -> list[str]:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            if quiet:
                quiet_upstream_warnings()
            add_lora(load_model(tiny_model_dir), lora)
            warnings.warn("another deprecation", FutureWarning, stacklevel=1)
        return [str(w.message) for w in seen if issubclass(w.category, FutureWarning)]

    assert any("is_gradient_checkpointing" in m for m in caught(quiet=False))
    assert caught(quiet=True) == ["another deprecation"]
