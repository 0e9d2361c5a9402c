"""What one `config/paper.yaml` SDPO run costs on one H200: measured parts, modelled parts.

    python bench/paper_scale_model.py      # prints a table; writes bench/results/paper_scale_model.json

Measured (read from bench/results/gpu_check.json, one H200): the utilization of a distillation step
(frozen teacher forward + student forward/backward + SDPO's loss) at 4 x (512 + 1,536) tokens: 20%
with gradient checkpointing as paper.yaml trains, 37% compiled without it (an optimistic bound).
Modelled: everything at 4k-13k-token responses, and the rollouts. No vLLM could run on the GPU
machine, so rollout decoding is modelled as bound by HBM bandwidth (every decode iteration reads the
weights and the KV cache of the sequences in flight, which fill the engine's KV memory), at an
assumed fraction `--decode-efficiency` of the bandwidth bound. Training FLOPs per step: the teacher's
forward, the student's no-grad pre-pass (sampling-policy log-probs) and forward + backward (3
forwards), with causal attention, at the measured utilization. Weight sync per step (LoRA adapter or
in-place reload) is left out (bench/rollout_engine.py measures it on CPU). A lower bound on time: no
tail of long stragglers, no preemption.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from distill_at_scale import QWEN3_8B  # noqa: E402

from gpu_check import QWEN3_1_7B, forward_flops  # noqa: E402

H200 = {"memory_gb": 141.0, "bandwidth_tb_s": 4.8}  # vendor figures
ROLLOUTS_PER_STEP = 64 * 8  # paper.yaml: prompts_per_step x n_rollouts
STEPS = 100
STUDENT_PROMPT = 512  # tokens (a DAPO problem in the chat template, with the instruction)
CONTEXT = 1024  # extra teacher-prompt tokens for the demonstration
ENGINE_OVERHEAD_GB = 2.0  # activations and CUDA graphs of the engine


def parameters(cfg) -> float:
    h, layers, vocab = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    q, kv = cfg["num_attention_heads"] * cfg["head_dim"], cfg["num_key_value_heads"] * cfg["head_dim"]
    per_layer = h * q + 2 * h * kv + q * h + 3 * h * cfg["intermediate_size"]
    return layers * per_layer + vocab * h * (1 if cfg["tie_word_embeddings"] else 2)


def kv_bytes_per_token(cfg) -> int:
    return 2 * cfg["num_hidden_layers"] * cfg["num_key_value_heads"] * cfg["head_dim"] * 2  # K and V, bf16


def trainer_resident_gb(cfg, finetune) -> float:
    """What the trainer keeps on the GPU while the engine samples (gradients freed, engine awake):
    bf16 weights, and for full fine-tuning AdamW's two bf16 states and the frozen teacher's copy."""
    n = parameters(cfg)
    return n * (2 + 4 + 2 if finetune == "full" else 2) / 1e9


def decode_seconds(cfg, response, gpu_memory_utilization, efficiency) -> tuple[float, dict]:
    weights = 2 * parameters(cfg)
    kv_capacity = gpu_memory_utilization * H200["memory_gb"] * 1e9 - weights - ENGINE_OVERHEAD_GB * 1e9
    if kv_capacity <= 0:
        return float("inf"), {"kv_gb": kv_capacity / 1e9}
    occupancy = (STUDENT_PROMPT + response / 2) * kv_bytes_per_token(cfg)  # a sequence's mean KV over its life
    in_flight = min(ROLLOUTS_PER_STEP, kv_capacity / occupancy)
    iteration = (weights + in_flight * occupancy) / (H200["bandwidth_tb_s"] * 1e12 * efficiency)
    tokens_per_s = in_flight / iteration
    return ROLLOUTS_PER_STEP * response / tokens_per_s, {
        "kv_gb": kv_capacity / 1e9,
        "sequences_in_flight": in_flight,
        "decode_tokens_per_s": tokens_per_s,
    }


def train_seconds(cfg, response, utilization, matmul_rate) -> float:
    teacher = forward_flops(cfg, 1, STUDENT_PROMPT + CONTEXT, response, response)
    student = forward_flops(cfg, 1, STUDENT_PROMPT, response, response)
    return ROLLOUTS_PER_STEP * (teacher + 4 * student) / (matmul_rate * utilization)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--decode-efficiency", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    parser.add_argument("--responses", type=int, nargs="+", default=[4096, 8192, 13054])
    parser.add_argument("--gpu-check", default=str(ROOT / "bench/results/gpu_check.json"))
    parser.add_argument("--out", default=str(ROOT / "bench/results/paper_scale_model.json"))
    args = parser.parse_args()
    measured = json.loads(Path(args.gpu_check).read_text())
    rate = measured["matmul_tflops_measured"] * 1e12
    utilization = {  # the step as paper.yaml runs it, and the fastest variant measured (an optimistic bound)
        "checkpointing": next(r["utilization"] for r in measured["distill_step"] if r["gradient_checkpointing"]),
        "compiled": max(r["utilization"] for r in measured["distill_step_variants"] if "utilization" in r),
    }
    rows = []
    for name, cfg in (("Qwen3-1.7B", QWEN3_1_7B), ("Qwen3-8B", QWEN3_8B)):
        for finetune in ("full", "lora"):
            free = H200["memory_gb"] - trainer_resident_gb(cfg, finetune)
            for share_name, share in (
                ("paper.yaml", 0.3),
                ("largest that fits", round(free / H200["memory_gb"] - 0.05, 2)),
            ):
                for response in args.responses:
                    decode = {e: decode_seconds(cfg, response, share, e) for e in args.decode_efficiency}
                    train = {k: train_seconds(cfg, response, u, rate) for k, u in utilization.items()}
                    mid = args.decode_efficiency[len(args.decode_efficiency) // 2]
                    fastest = min(decode.values())[0] + min(train.values())
                    slowest = max(decode.values())[0] + max(train.values())
                    rows.append(
                        {
                            "model": name,
                            "finetune": finetune,
                            "gpu_memory_utilization": share,
                            "share": share_name,
                            "mean_response_tokens": response,
                            "decode_s_per_step": {str(e): d[0] for e, d in decode.items()},
                            "engine": decode[mid][1],
                            "train_s_per_step": train,
                            "hours_per_run": [fastest * STEPS / 3600, slowest * STEPS / 3600],
                        }
                    )
    result = {
        "measured": {"matmul_tflops": rate / 1e12, "distill_step_utilization": utilization, "source": args.gpu_check},
        "assumed": {
            "gpu": H200,
            "rollouts_per_step": ROLLOUTS_PER_STEP,
            "steps": STEPS,
            "student_prompt_tokens": STUDENT_PROMPT,
            "teacher_context_tokens": CONTEXT,
            "decode_efficiency": args.decode_efficiency,
        },
        "rows": rows,
    }
    out = Path(args.out)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        "| model | finetune | engine share | mean response | in flight | decode tok/s | decode s/step "
        "| train s/step | h per 100 steps |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        decode = r["decode_s_per_step"]
        train = r["train_s_per_step"]
        engine = r["engine"]
        print(
            f"| {r['model']} | {r['finetune']} | {r['gpu_memory_utilization']:.2f} ({r['share']}) | "
            f"{r['mean_response_tokens']:,} | {engine.get('sequences_in_flight', 0):.0f} | "
            f"{engine.get('decode_tokens_per_s', 0):,.0f} | {min(decode.values()):,.0f}–{max(decode.values()):,.0f} | "
            f"{min(train.values()):,.0f}–{max(train.values()):,.0f} | "
            f"{r['hours_per_run'][0]:.1f}–{r['hours_per_run'][1]:.1f} |"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
