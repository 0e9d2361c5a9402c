"""One on-policy self-distillation step: this project vs TRL's SDPOTrainer, same tiny model, CPU.

Both sides: the toy model with the same LoRA, P prompts x n rollouts, the same completion budget
and sampling, full-vocabulary generalized JSD with alpha = 0.5, the frozen initial model as
teacher, and a successful rollout of the same group as the teacher's context (SDPO's
demonstration mode, `regen` here). Each side runs in its own process; we report the median
time per step (after a warm-up step) and the process's peak RSS, and check that both losses
agree on identical logits.

    python bench/onpolicy_vs_trl.py [--model results/models/toy/hf] [--steps 6]

Writes bench/results/onpolicy_vs_trl.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
P, N, MAX_NEW, LR, LORA_R = 8, 8, 96, 5e-4, 8


def problems(k):
    from selfdistill.data import toy

    return toy.generate_problems(
        toy.ToyDataConfig(seed=7, n_train=k, n_test=0, n_ood=0, train_terms=(3, 4), ood_terms=(5, 6), max_operand=9)
    )


def run_ours(model_path, steps):
    from dataclasses import replace

    import torch

    from selfdistill import distributed
    from selfdistill.backends.hf import HFBackend
    from selfdistill.config import load_config
    from selfdistill.models import load_model, load_tokenizer
    from selfdistill.settings.core import build
    from selfdistill.settings.grading import GradingConfig
    from selfdistill.settings.methods import hyperparameters
    from selfdistill.settings.prompts import Prompts
    from selfdistill.settings.training import LoraConfig
    from selfdistill.train.model import add_lora
    from selfdistill.train.objectives import make_objective
    from selfdistill.train.rollouts import train_on_rollouts

    torch.set_num_threads(2)
    cfg = load_config()
    hp = replace(
        hyperparameters(cfg, "onpolicy"),
        steps=steps,
        prompts_per_step=P,
        n_rollouts=N,
        max_new_tokens=MAX_NEW,
        lr=LR,
        alpha=0.5,
        support="full",
        teacher="frozen",
        micro_batch_size=P * N,
        generation_batch_size=P * N,
        checkpoint_every=0,
    )
    templates = build(Prompts, cfg["prompts"])
    tok = load_tokenizer(model_path)
    model = add_lora(load_model(model_path), replace(build(LoraConfig, cfg["lora"]), r=LORA_R))
    subset = problems(P).assign(repeat=0)
    stamps = [time.perf_counter()]
    objective = make_objective("onpolicy", model, tok, hp, "regen", "standard", templates)
    train_on_rollouts(
        model,
        tok,
        subset,
        objective,
        hp,
        templates,
        GradingConfig(workers=1, timeout_s=10, max_answer_chars=1000),
        0,
        HFBackend(model, tok, hp.generation_batch_size, ranks=distributed),  # rollouts through generate, as TRL's
        1024,
        on_step=lambda r, total: stamps.append(time.perf_counter()),
    )
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def run_trl(model_path, steps):
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch
    import yaml
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl.experimental.sdpo import SDPOConfig, SDPOTrainer

    from selfdistill.grading import grade_responses
    from selfdistill.models import load_tokenizer
    from selfdistill.settings.grading import GradingConfig

    torch.set_num_threads(2)
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    probs = problems(P)
    template = cfg["prompts"]["student"]
    data = Dataset.from_dict(
        {
            "prompt": [[{"role": "user", "content": template.replace("{problem}", p)}] for p in probs["problem"]],
            "answer": probs["answer"].tolist(),
        }
    )

    def correctness(prompts, completions, answer, **kwargs):
        texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
        return [
            float(r["correct"])
            for r in grade_responses(texts, answer, GradingConfig(workers=1, timeout_s=10, max_answer_chars=1000))
        ]

    stamps = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            stamps.append(("begin", time.perf_counter()))

        def on_step_end(self, args, state, control, **kw):
            stamps.append(("end", time.perf_counter()))

    args = SDPOConfig(
        output_dir=str(ROOT / "bench/results/.trl_tmp"),
        max_steps=steps,
        per_device_train_batch_size=P * N,
        num_generations=N,
        max_completion_length=MAX_NEW,
        temperature=1.0,
        top_p=1.0,
        learning_rate=LR,
        distillation_mode="full_logits",
        distillation_alpha=0.5,
        teacher_model_kind="base",
        use_cpu=True,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        seed=0,
        bf16=False,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        dont_reprompt_on_self_success=False,
    )
    lora = LoraConfig(
        r=LORA_R,
        lora_alpha=cfg["lora"]["alpha"],
        lora_dropout=0.0,
        target_modules=cfg["lora"]["target_modules"],
        task_type="CAUSAL_LM",
    )
    trainer = SDPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_path),
        reward_funcs=correctness,
        args=args,
        train_dataset=data,
        processing_class=load_tokenizer(model_path),
        peft_config=lora,
        callbacks=[Timer()],
    )
    trainer.train()
    begins = [t for k, t in stamps if k == "begin"]
    ends = [t for k, t in stamps if k == "end"]
    # A step's generation happens when its inputs are prepared, inside the step, in both trainers.
    return [e - b for b, e in zip(begins, ends, strict=True)]


def loss_agreement():
    """Max |ours - TRL| of the per-token full-vocabulary JSD (alpha 0.5) on identical logits."""
    import torch
    from trl.experimental.sdpo.loss_utils import compute_full_logit_self_distillation_loss

    from selfdistill.train.losses import generalized_jsd

    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(4, 32, 400, generator=g) * 3, torch.randn(4, 32, 400, generator=g) * 3
    ours = generalized_jsd(torch.log_softmax(student, -1), torch.log_softmax(teacher, -1), 0.5)
    theirs = compute_full_logit_self_distillation_loss(student, teacher, distillation_alpha=0.5)
    return float((ours - theirs).abs().max())


def child(which, model_path, steps):
    times = run_ours(model_path, steps) if which == "ours" else run_trl(model_path, steps)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"step_seconds": times, "peak_rss_mb": peak_mb}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "results/models/toy/hf"))
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--child", choices=["ours", "trl"])
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.model, args.steps)
    if not Path(args.model).exists():
        sys.exit(f"{args.model} does not exist: run the workflow first (it pretrains the toy model), or pass --model")
    import statistics

    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "setup": {
            "prompts": P,
            "rollouts_per_prompt": N,
            "max_new_tokens": MAX_NEW,
            "lora_r": LORA_R,
            "alpha": 0.5,
            "loss": "full-vocabulary generalized JSD",
            "teacher": "frozen initial model",
            "steps": args.steps,
        },
    }
    for which in ("ours", "trl"):
        out = subprocess.run(
            [sys.executable, __file__, "--child", which, "--model", args.model, "--steps", str(args.steps)],
            capture_output=True,
            text=True,
            check=True,
        )
        measured = json.loads(out.stdout.strip().splitlines()[-1])
        steady = measured["step_seconds"][1:]  # the first step includes warm-up
        result[which] = {
            "median_step_s": statistics.median(steady),
            "peak_rss_mb": measured["peak_rss_mb"],
            "step_seconds": measured["step_seconds"],
        }
    result["speedup_vs_trl"] = result["trl"]["median_step_s"] / result["ours"]["median_step_s"]
    result["max_abs_loss_difference"] = loss_agreement()
    out = ROOT / "bench/results/onpolicy_vs_trl.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "setup"}, indent=2))


if __name__ == "__main__":
    main()
