"""Trains the tiny model for tests/test_distributed.py (and the vLLM tests), alone or as one of
several ranks.

python tests/distributed_worker.py '<json: model_dir, out, method, finetune, steps, processes, state[, teacher,
    engine ("hf" | "vllm"), skip_sync_on_rank: [rank, step] (a negative control)]>'

Each rank also writes which prompts (by index in the step) it sampled at each step: shares<rank>.json.
"""

import json
import sys
from pathlib import Path

import pandas as pd
import torch

from selfdistill import distributed


class Recorded:
    """A rollout engine that records the prompt indices this rank sampled per step, and can skip
    one sync on one rank (the negative control: that rank's engine serves the previous policy)."""

    def __init__(self, engine, args):
        self.engine, self.shares, self.syncs = engine, [], 0
        self.skip = args.get("skip_sync_on_rank")

    def sync(self, student):
        self.syncs += 1
        if self.skip != [distributed.rank(), self.syncs - 1]:
            self.engine.sync(student)
        elif distributed.world_size() > 1:  # the gathers the other ranks' syncs wait for, nothing loaded
            distributed.full_trainable_weights(student)

    def generate(self, prompts, sampling, desc="generate", indices=None):
        self.shares.append(list(indices))
        return self.engine.generate(prompts, sampling, desc, indices)

    def close(self):
        if hasattr(self.engine, "llm"):
            self.engine.close()


def main(args: dict) -> None:
    from dataclasses import replace

    from selfdistill.backends.hf import HFBackend
    from selfdistill.models import load_model, load_tokenizer
    from selfdistill.train.model import trainable_model
    from selfdistill.train.progress import Progress
    from selfdistill.train.sft import train_sft

    from configs import LORA, TRAINING, rollout_hp, run_rollouts, sft_hp
    from test_onpolicy import SUBSET

    torch.set_num_threads(1)
    torch.manual_seed(0)
    tok = load_tokenizer(args["model_dir"])
    model = trainable_model(load_model(args["model_dir"]), LORA, replace(TRAINING, finetune=args["finetune"]))
    if args["method"] == "sft":
        # 12 fixed examples of different lengths; 2 steps of 3 micro-batches: one rank pads its share.
        examples = [([5 + i, 6, 7], [8 + (i * 7) % 50 for _ in range(3 + i % 4)] + [2]) for i in range(12)]
        hp = sft_hp(lr=1e-2, epochs=1, batch_size=6, micro_batch_size=2, max_grad_norm=1.0, checkpoint_every=1)
        progress = Progress(Path(args["out"]) / "tensorboard")
        rows = train_sft(model, tok, examples, hp, seed=0, loss_chunk=3, state_path=args["state"], on_step=progress)
        progress.close()
    else:
        # 2 prompts x 4 rollouts in micro-batches of 3: 3 micro-batches over 2 ranks.
        teacher = {"teacher": args.get("teacher", "frozen"), "ema_rate": 0.5} if args["method"] == "onpolicy" else {}
        hp = rollout_hp(
            args["method"],
            lr=1e-2,
            steps=args["steps"],
            prompts_per_step=2,
            micro_batch_size=3,
            checkpoint_every=1,
            **teacher,
        )
        subset = pd.concat([SUBSET.assign(repeat=k) for k in range(2)], ignore_index=True)
        rollouts, engine = (None, None)
        if args.get("engine") == "vllm":
            from configs import vllm_rollout_engine

            rollouts, engine = vllm_rollout_engine(args["model_dir"], model, sleep=False)
        rollouts = Recorded(rollouts or HFBackend(model, tok, hp.generation_batch_size, ranks=distributed), args)
        rows = run_rollouts(
            model,
            tok,
            subset,
            args["method"],
            "solution",
            "standard",
            hp,
            seed=0,
            state_path=args["state"],
            rollouts=rollouts,
            engine=engine,
        )
        (Path(args["out"]) / f"shares{distributed.rank()}.json").write_text(json.dumps(rollouts.shares))
    distributed.save_pretrained(model, Path(args["out"]) / "model")
    if args["method"] != "sft":
        rollouts.close()  # after the last collective (a vLLM engine takes the process group down)
    if distributed.rank() == 0:
        (Path(args["out"]) / "rows.json").write_text(json.dumps(rows))


if __name__ == "__main__":
    arguments = json.loads(sys.argv[1])
    status = distributed.run_as_ranks(arguments["processes"], sys.argv)
    if status is not None:
        sys.exit(status)
    sys.path.insert(0, str(Path(__file__).parent))
    main(arguments)
