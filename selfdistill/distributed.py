"""Training across processes, one per GPU (`training.processes: N`: every GPU of a job samples
and trains; full fine-tuning of models whose weights, gradients and optimizer state do not fit one).

The job's own process re-runs its script as N ranks under `accelerate launch` (or, under SLURM,
they are started by `srun`); each rank shards the model with FSDP2 (torch's `fully_shard`: every
decoder layer one unit). Each rank samples its share of a step's prompts (`generate_shares`: all n
rollouts of a prompt on one rank, each prompt seeded by its index, not by its rank) with its own
engine, and every rank gets the whole batch, so the result does not depend on N; each rank takes
its share of the micro-batches; rank 0 writes the outputs. On CPU the same code runs over gloo,
which is how the tests compare N = 2 with one process.
"""

from __future__ import annotations

import atexit
import math
import os
import shutil
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist

from selfdistill import precision
from selfdistill.io import apply_umask


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_rank_process() -> bool:
    """True in a process started by `accelerate launch` / torchrun (they set LOCAL_RANK)."""
    return "LOCAL_RANK" in os.environ


def launch_command(processes: int, argv: list[str], port: int) -> list[str]:
    """How the job's process starts its ranks. Inside a SLURM allocation: SLURM's own launcher, one
    task per rank spread over the job's nodes (`srun`, a step sharing the job's resources), each task
    given torchrun's variables from SLURM's (RANK = SLURM_PROCID, LOCAL_RANK = SLURM_LOCALID, the
    first node of the step as MASTER_ADDR), so one node and many take the same path. Elsewhere:
    `accelerate launch` on this machine (torchrun's launcher; on a machine without GPUs the ranks
    run on CPU over gloo)."""
    if "SLURM_JOB_ID" in os.environ and shutil.which("srun"):
        nodes = int(os.environ.get("SLURM_JOB_NUM_NODES", "1"))
        if processes % nodes:
            raise ValueError(
                f"training.processes = {processes} ranks do not spread evenly over the job's {nodes} nodes: "
                "give the training rules a number of nodes that divides it (resources: nodes)"
            )
        ranks_env = (
            "export RANK=$SLURM_PROCID LOCAL_RANK=$SLURM_LOCALID WORLD_SIZE=$SLURM_NTASKS "
            f'MASTER_PORT={port} MASTER_ADDR=$(scontrol show hostnames "$SLURM_STEP_NODELIST" | head -n 1); '
            'exec "$@"'
        )
        return [
            "srun",
            "--overlap",  # inside the job's own step: share its resources rather than wait for them
            "--kill-on-bad-exit=1",
            f"--ntasks={processes}",
            f"--nodes={nodes}",
            f"--ntasks-per-node={processes // nodes}",
            "bash",
            "-c",
            ranks_env,
            "rank",
            sys.executable,
            *argv,
        ]
    # --multi_gpu selects torchrun's launcher; on a machine without GPUs it runs the ranks on CPU.
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_machines",
        "1",
        "--num_processes",
        str(processes),
        "--main_process_port",
        str(port),
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        *argv,
    ]


def run_as_ranks(processes: int, argv: list[str]) -> int | None:
    """In the job's process with processes > 1: run this script (`argv`, i.e. sys.argv) as that
    many ranks and return their exit status (the caller exits with it). In a rank: join the
    process group, return None; with one process: return None."""
    if is_rank_process():
        init()
        return None
    if processes <= 1:
        return None
    with socket.socket() as s:  # a free port for the ranks' rendezvous
        s.bind(("", 0))
        port = s.getsockname()[1]
    return subprocess.run(launch_command(processes, argv, port)).returncode


def init() -> None:
    """Join the process group (nccl on GPUs, gloo on CPU); each rank uses GPU LOCAL_RANK of the
    ones the job claimed."""
    if dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    # A rank's vLLM engine tears the process group down when it shuts down (vLLM's EngineCore
    # cleanup): close engines after the last collective; the group may be gone by exit.
    atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())


def shard(model):
    """FSDP2, in place: each decoder layer one unit, then the causal LM itself: for a PEFT model
    the wrapped one, whose forward `generate` calls (its embeddings and head must be gathered).
    Float32 masters (`selfdistill.precision`) are gathered in their compute dtype and their
    gradients reduced in float32 (verl's FSDP mixed precision). A single process keeps the model
    as it is."""
    return model if world_size() == 1 else fully_shard_model(model)


def fully_shard_model(model):
    """What `shard` does with N > 1 ranks, whatever the number: at one rank, the sharded path (FSDP's
    mixed precision, its hooks, nccl) checked on one GPU (bench/fsdp_check.py)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy()
    if precision.has_masters(model):
        policy = MixedPrecisionPolicy(param_dtype=precision.compute_dtype(model), reduce_dtype=torch.float32)
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    layer_types = set(lm._no_split_modules or ())
    for module in lm.modules():
        if type(module).__name__ in layer_types:
            fully_shard(module, mp_policy=policy)
    fully_shard(lm, mp_policy=policy)
    return model


@contextmanager
def gathered(model):
    """A sharded model's weights whole on every rank for the duration, gathered once on entry (one
    all-gather per layer, not one per token; the whole model's memory on every rank meanwhile), so
    its forwards are collective-free: each rank can sample its own prompts, any number of them."""
    from torch.distributed.fsdp import FSDPModule

    if world_size() == 1:  # nothing sharded (generation outside training, or one process)
        yield model
        return
    units = [m for m in model.modules() if isinstance(m, FSDPModule)]
    for unit in units:
        unit.set_reshard_after_forward(False, recurse=False)
        unit.unshard()
    try:
        yield model
    finally:
        for unit in units:
            unit.reshard()
        for unit in units[1:]:  # the root (outermost) unit keeps FSDP's default for it: no reshard
            unit.set_reshard_after_forward(True, recurse=False)


def full(value):
    """The whole tensor behind a DTensor (a sharded weight, the grad norm of sharded parameters);
    a collective for a sharded one."""
    return value.full_tensor() if hasattr(value, "full_tensor") else value


def my_share(items: list) -> list[tuple[object, float]]:
    """This rank's items with weight 1, padded with weight-0 repeats of the first item so every
    rank runs the same number of forward/backward passes (each is a collective under FSDP)."""
    if not items:
        return []
    share = items[rank() :: world_size()]
    count = math.ceil(len(items) / world_size())
    return [(item, 1.0) for item in share] + [(items[0], 0.0)] * (count - len(share))


def generate_shares(engine, prompts: list, sampling, desc: str = "generate") -> list:
    """Every rank samples its share of `prompts` with its own engine (prompt i on rank i mod N, its n
    samples together, so a group stays whole; seeds by prompt index, so the samples do not depend
    on N) and gets every rank's completions, in prompt order."""
    import dataclasses

    mine = list(range(rank(), len(prompts), world_size()))
    completions = engine.generate([prompts[i] for i in mine], sampling, desc, indices=mine)
    ours = [dataclasses.replace(c, prompt_index=mine[c.prompt_index]) for c in completions]
    everyone = [c for part in all_gather(ours) for c in part]
    return sorted(everyone, key=lambda c: (c.prompt_index, c.sample))


def all_sum(value: float) -> float:
    if world_size() == 1:
        return value
    total = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(total)
    return float(total)


def all_gather(obj) -> list:
    """Every rank's object, in rank order."""
    if world_size() == 1:
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def broadcast(obj):
    """Rank 0's object on every rank."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def rank_file(path) -> Path | None:
    """Per-rank resumable state: rank r of N > 1 keeps its shards in `<stem>.rank<r><suffix>`."""
    if path is None:
        return None
    path = Path(path)
    return path if world_size() == 1 else path.with_name(f"{path.stem}.rank{rank()}{path.suffix}")


def full_trainable_weights(model) -> dict:
    """The trainable weights, whole on every rank (gathered from their shards one at a time; every
    rank must call it), float32 masters in their compute dtype: a LoRA adapter, or a whole model."""
    return {
        n: precision.for_export(model, full(p.detach())).cpu() for n, p in model.named_parameters() if p.requires_grad
    }


def save_pretrained(model, path) -> None:
    """`model.save_pretrained(path)`, gathering sharded trainable weights to rank 0 first (every
    rank must call it). Trainable weights are all a LoRA adapter or a fully fine-tuned model has;
    float32 masters are saved in their compute dtype (what evaluation loads)."""
    if world_size() == 1 and not precision.has_masters(model):
        model.save_pretrained(path)
        apply_umask(path)
        return
    weights = full_trainable_weights(model)
    if rank() == 0:
        model.save_pretrained(path, state_dict=weights)
        apply_umask(path)
    barrier()


def launch_ranks(training) -> None:
    """In a training script: with `training.processes` > 1 (a TrainingConfig), the job's process
    re-runs the script as that many ranks and exits with their status; in a rank (or alone) it returns."""
    status = run_as_ranks(training.processes, sys.argv)
    if status is not None:
        sys.exit(status)


def save_model(model, out) -> bool:
    """The trained adapter (or full model) at `out`, a directory that appears only when complete.
    Every rank calls it; rank 0 writes, and is the only one told to go on writing outputs (True)."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    if rank() == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    save_pretrained(model, tmp)
    if rank() == 0:
        tmp.rename(out)
    return rank() == 0
