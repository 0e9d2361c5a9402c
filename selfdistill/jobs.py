"""What every workflow script does first: log to the job's log file, decode canonical params."""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import resource
import shutil
import sys
import time
import warnings
from pathlib import Path

# What to lower when a job of this rule runs out of GPU memory.
OOM_KNOBS = {
    "generation": "generation.batch_size (transformers backend); models.<name>.vllm.gpu_memory_utilization or "
    "max_model_len (vLLM backend); max_new_tokens of the eval set or teacher",
    "train_sft": "sft.micro_batch_size (gradient accumulation keeps the step size); lora.r; the teacher traces' "
    "length (teacher.max_new_tokens)",
    "train_rollouts": "onpolicy/grpo.micro_batch_size, generation_batch_size and max_new_tokens; onpolicy.support: "
    "topk (or sampled) instead of full; models.<name>.vllm.gpu_memory_utilization when rollouts use vLLM",
}
RULE_KIND = {
    "evaluate": "generation",
    "teacher_traces": "generation",
    "table1_traces": "generation",
    "train_sft": "train_sft",
    "train_rollouts": "train_rollouts",
}


def oom_advice(rule: str, error: BaseException) -> str | None:
    """A message naming the config knobs to lower, if `error` is an out-of-memory error."""
    import torch

    if not (isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()):
        return None
    knobs = OOM_KNOBS.get(RULE_KIND.get(rule, ""), "the batch sizes and max_new_tokens of this rule's config section")
    return f"rule {rule} ran out of GPU memory: lower {knobs}; or give the job a GPU with more memory (resources)"


# Upstream warnings that no setting here can act on: peft (0.21) reads transformers' deprecated
# `is_gradient_checkpointing` whenever it wraps a model in an adapter, which put a FutureWarning in
# every training and adapter-evaluation log. Only these messages are silenced; all others reach the log.
UPSTREAM_WARNINGS = [(FutureWarning, r"`is_gradient_checkpointing` is deprecated")]


def quiet_upstream_warnings() -> None:
    for category, message in UPSTREAM_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def start_job(snakemake) -> None:
    """Send logging, warnings and tracebacks of this job to its log file (and stderr)."""
    # A training rank (selfdistill.distributed; accelerate launch sets LOCAL_RANK and RANK). Not
    # imported from there: every job would then depend on that module's code.
    rank = os.environ.get("RANK") if "LOCAL_RANK" in os.environ else None
    handlers = [logging.StreamHandler(sys.stderr)]
    if snakemake.log:  # training ranks append to the log their launching process started
        handlers.append(logging.FileHandler(snakemake.log[0], mode="w" if rank is None else "a"))
    fmt = "%(asctime)s " + ("" if rank is None else f"[rank {rank}] ") + "%(name)s %(levelname)s %(message)s"
    logging.basicConfig(level=logging.INFO, format=fmt, handlers=handlers, force=True)
    logging.captureWarnings(True)
    quiet_upstream_warnings()
    # vLLM's own logging set-up (on import) disables every logger that exists by then, ours included,
    # and the rest of the job would log nothing: it logs through this configuration instead.
    os.environ["VLLM_CONFIGURE_LOGGING"] = "0"

    def excepthook(kind, value, tb):
        logging.getLogger("job").error("job failed", exc_info=(kind, value, tb))
        advice = oom_advice(snakemake.rule, value)
        if advice:
            logging.getLogger("job").error(advice)

    sys.excepthook = excepthook
    # Before torch touches CUDA: which GPUs this job may use (see gpu_slots); ranks inherit them.
    from selfdistill.gpu_slots import claim_for_job

    if rank is None:
        claim_for_job(
            int(snakemake.resources.get("gpu", 0)),
            os.environ.get("SELFDISTILL_GPU_LOCKS", "/tmp/selfdistill-gpu-locks"),
        )
    # Snakemake schedules by `threads`; torch would otherwise take every core and oversubscribe.
    import torch

    torch.set_num_threads(max(1, snakemake.threads))
    logging.getLogger("job").info(
        "rule %s, wildcards %s, threads %d", snakemake.rule, dict(snakemake.wildcards), snakemake.threads
    )
    # Wall time and peak memory in every log (cached rules cannot have a benchmark file).
    started = time.perf_counter()
    atexit.register(
        lambda: logging.getLogger("job").info(
            "finished in %.1f s, peak RSS %.0f MB",
            time.perf_counter() - started,
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        )
    )


def param(snakemake, name):
    """A param rendered by canonical_json in the rule, decoded."""
    return json.loads(getattr(snakemake.params, name))


def section(snakemake, name, cls):
    """Param `name` as its typed config section (a frozen dataclass): built once, per script."""
    from selfdistill.settings.core import build

    return build(cls, param(snakemake, name))


def config_slice(snakemake) -> dict:
    """What a job's outputs record as their config (provenance): every config param the rule
    passed, as passed (the same values that decide re-runs), and the job's wildcards."""
    sliced = {name: param(snakemake, name) for name in snakemake.params.keys() if name != "code"}
    return {**sliced, "wildcards": dict(snakemake.wildcards)}


def model_location(snakemake) -> str:
    """What to load: the model directory the workflow built (an input), else the config's hub id or path."""
    return snakemake.input.get("model") or param(snakemake, "model")["source"]


def _input_files(paths) -> list:
    """(path, size, mtime) of every file under the job's inputs: a re-created input changes them."""
    found = []
    for path in map(Path, paths):
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                stat = file.stat()
                found.append((str(file), stat.st_size, stat.st_mtime_ns))
    return found


def job_key(snakemake) -> str:
    """What a job's partial state (finished shards, training state) belongs to: its rule,
    wildcards, params (config slices and the code hash) and inputs as they are on disk. A job
    that differs in any of them must not reuse that state."""
    payload = {
        "rule": snakemake.rule,
        "wildcards": dict(snakemake.wildcards),
        "params": dict(snakemake.params.items()),
        "inputs": _input_files(snakemake.input),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def claim_partial(directory, key: str) -> Path:
    """`directory`, where a job keeps partial state across crashes: kept if it was written by a job
    with the same key, else emptied, with a log line saying why. The key file is written before
    any state, so state without one (or with another) is never reused."""
    directory, log = Path(directory), logging.getLogger("job")
    marker = directory / "JOB_KEY"
    if directory.exists():
        previous = marker.read_text().strip() if marker.is_file() else "no key"
        if previous == key:
            log.info("partial state in %s is this job's (key %s): resuming from it", directory, key)
            return directory
        log.warning(
            "discarding partial state in %s: it was written by a job with other params, code or inputs "
            "(key %s, this job's is %s)",
            directory,
            previous,
            key,
        )
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(key + "\n")
    os.replace(tmp, marker)
    return directory
