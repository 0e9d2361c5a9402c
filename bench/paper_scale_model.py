"""What `config/paper.yaml` costs: one SDPO run on N = 1, 4, 8 GPUs, and the whole grid in GPU-hours.

    python bench/paper_scale_model.py      # prints tables; writes bench/results/paper_scale_model.json

Measured (one H200, earlier sessions, read from bench/results/): the bf16 matmul rate (gpu_check.json),
the utilization of a full fine-tuning step with gradient checkpointing, as paper.yaml trains
(fsdp_check.json: Qwen3-1.7B architecture, 4 x 2,048 tokens, the plain process's steps after the
first; 6N FLOPs convention plus causal attention, recomputation not counted as work). The LoRA
distillation step's utilization (gpu_check.json) is reported beside it, not used.
Modelled, not measured:
- Rollouts: each of the N ranks runs its own vLLM engine on its share of the step's rollouts (one
  engine per rank, tensor parallel 1, as the paper's verl runs); decoding bound by HBM bandwidth
  (every iteration reads the bf16 weights and the KV cache of the sequences in flight, which fill the
  engine's memory share) at an assumed fraction of that bound. No long-tail stragglers: a lower bound.
- Training: the teacher's forward, the student's no-grad pre-pass and forward + backward per rollout,
  split over N ranks at the measured utilization; FSDP's collectives and the per-step weight sync are
  left out (at 20k-token micro-batches a layer's all-gather is ~1-3% of its compute on NVLink).
- Memory per GPU: float32 master weights, gradients and AdamW state (16 bytes per parameter) and the
  frozen teacher's bf16 copy (2), sharded over N; while the engine samples, gradients are freed and the
  engine holds its share; while the trainer steps, the engine sleeps. Activations of one micro-batch
  with gradient checkpointing. A setting that does not fit is reported as such.
- The grid: every job of config/paper.yaml (enumerated by selfdistill.grid), its decode tokens or
  training FLOPs at one assumed mean response length for every model and problem set (a range).
The H100 is modelled with the H200's measured matmul rate (the same compute die), 80 GB and 3.35 TB/s.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from distill_at_scale import QWEN3_8B  # noqa: E402

from gpu_check import QWEN3_1_7B, forward_flops  # noqa: E402

GPUS = {  # vendor figures
    "H100": {"memory_gb": 80.0, "bandwidth_tb_s": 3.35},
    "H200": {"memory_gb": 141.0, "bandwidth_tb_s": 4.8},
}
MODELS = {"Qwen3-1.7B": QWEN3_1_7B, "Qwen3-8B": QWEN3_8B}  # the 7-8B models of the paper are all 8B-like
STUDENT_PROMPT = 512  # tokens: a DAPO problem in the chat template, with its instruction
CONTEXT = 1024  # extra teacher-prompt tokens for the solution or demonstration
ENGINE_OVERHEAD_GB = 2.0  # the engine's activations and CUDA graphs
RESERVE = 0.95  # of a GPU's memory usable before fragmentation and the CUDA context


def parameters(cfg) -> float:
    h, layers, vocab = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    q, kv = cfg["num_attention_heads"] * cfg["head_dim"], cfg["num_key_value_heads"] * cfg["head_dim"]
    per_layer = h * q + 2 * h * kv + q * h + 3 * h * cfg["intermediate_size"]
    return layers * per_layer + vocab * h * (1 if cfg["tie_word_embeddings"] else 2)


def kv_bytes_per_token(cfg) -> int:
    return 2 * cfg["num_hidden_layers"] * cfg["num_key_value_heads"] * cfg["head_dim"] * 2  # K and V, bf16


def activation_gb(cfg, tokens: int) -> float:
    """One sequence under gradient checkpointing: every layer's bf16 input kept, one layer's
    activations recomputed at a time, and the loss's 1,024-position float32 logits chunk."""
    h, layers = cfg["hidden_size"], cfg["num_hidden_layers"]
    kept = layers * tokens * h * 2
    one_layer = tokens * (10 * h + 3 * cfg["intermediate_size"]) * 2
    return (kept + one_layer + 1024 * cfg["vocab_size"] * 4 * 3) / 1e9


def memory_gb(cfg, n: int, response: int) -> dict:
    """Per GPU: the trainer while the engine samples (gradients freed) and while it steps."""
    p = parameters(cfg)
    sampling = p * (4 + 8 + 2) / n  # float32 masters, AdamW's two float32 moments, the frozen bf16 teacher
    stepping = sampling + p * 4 / n + activation_gb(cfg, STUDENT_PROMPT + CONTEXT + response) * 1e9
    return {"trainer_sampling": sampling / 1e9, "trainer_stepping": stepping / 1e9}


def engine_decode(cfg, gpu, share, sequences, response, efficiency) -> dict:
    """One engine decoding `sequences` responses of mean length `response` with `share` of the GPU."""
    weights = 2 * parameters(cfg)
    kv_capacity = share * gpu["memory_gb"] * 1e9 - weights - ENGINE_OVERHEAD_GB * 1e9
    if kv_capacity <= 0:
        return {"seconds": float("inf"), "kv_gb": kv_capacity / 1e9}
    occupancy = (STUDENT_PROMPT + response / 2) * kv_bytes_per_token(cfg)  # a sequence's mean KV over its life
    in_flight = min(sequences, kv_capacity / occupancy)
    iteration = (weights + in_flight * occupancy) / (gpu["bandwidth_tb_s"] * 1e12 * efficiency)
    tokens_per_s = in_flight / iteration
    return {
        "seconds": sequences * response / tokens_per_s,
        "kv_gb": kv_capacity / 1e9,
        "in_flight": in_flight,
        "tokens_per_s": tokens_per_s,
    }


def train_flops(cfg, rollouts: int, response: int) -> float:
    teacher = forward_flops(cfg, 1, STUDENT_PROMPT + CONTEXT, response, response)
    student = forward_flops(cfg, 1, STUDENT_PROMPT, response, response)
    return rollouts * (teacher + 4 * student)  # pre-pass + forward + backward (2 forwards) of the student


def run(cfg, gpu, n, response, rollouts, steps, share, efficiency, utilization, rate) -> dict:
    """One rollout-method run on n GPUs: hours (fastest, slowest over efficiency and utilization)."""
    memory = memory_gb(cfg, n, response)
    fits = (
        memory["trainer_sampling"] + share * gpu["memory_gb"] <= RESERVE * gpu["memory_gb"]
        and memory["trainer_stepping"] + ENGINE_OVERHEAD_GB <= RESERVE * gpu["memory_gb"]
    )
    decode = [engine_decode(cfg, gpu, share, rollouts / n, response, e) for e in efficiency]
    train = [train_flops(cfg, rollouts, response) / (n * rate * u) for u in utilization]
    per_step = [min(d["seconds"] for d in decode) + min(train), max(d["seconds"] for d in decode) + max(train)]
    return {
        "fits": fits,
        "memory_gb": memory,
        "decode_s_per_step": [min(d["seconds"] for d in decode), max(d["seconds"] for d in decode)],
        "train_s_per_step": [min(train), max(train)],
        "engine": decode[len(decode) // 2],
        "hours": [s * steps / 3600 for s in per_step],
    }


def measured_utilization(fsdp: dict, rate: float) -> list[float]:
    """The full fine-tuning step's utilization: SFT on 4 x 2,048 tokens (fwd + bwd, 6N), the plain
    process's steps after the first (warm-up), at the measured matmul rate."""
    flops = 3 * forward_flops(QWEN3_1_7B, 4, 0, 2048, 2048)
    return [flops / (s * rate) for s in sorted(fsdp["plain"]["step_seconds"][1:])]


def grid_gpu_hours(config, gpu, n, response, efficiency, utilization, rate) -> dict:
    """GPU-hours of every job of `config` (a checked paper.yaml), per job kind: (fastest, slowest)."""
    from selfdistill import grid

    totals = {}

    def add(kind, hours):
        low, high = totals.get(kind, (0.0, 0.0))
        totals[kind] = (low + hours[0], high + hours[1])

    def decode_hours(cfg, share, sequences):
        seconds = [engine_decode(cfg, gpu, share, sequences, response, e)["seconds"] for e in efficiency]
        return [min(seconds) / 3600, max(seconds) / 3600]

    full = 14_000  # distinct DAPO problems after deduplication (approx.)
    size = {str(c): (full if c == "full" else int(c)) for c in config["coverage"]}
    for model, spec in config["models"].items():
        cfg = QWEN3_1_7B if "1_7b" in model else QWEN3_8B
        share = spec.get("vllm", {}).get("gpu_memory_utilization", 0.85)
        for path in grid.runs({**config, "models": {model: spec}}):
            method, _, _, subset = path.split("/")
            coverage = subset[1:].split("_s")[0]
            if grid.METHODS[method].rollouts:
                hp = grid.hyperparameters(config, method, coverage)
                result = run(
                    cfg,
                    gpu,
                    n,
                    response,
                    hp["prompts_per_step"] * hp["n_rollouts"],
                    hp["steps"],
                    config["rollouts"]["gpu_memory_utilization"],
                    efficiency,
                    utilization,
                    rate,
                )
                add(f"train_{method}", [h * n for h in result["hours"]])
            else:  # SFT: every subset row's selected traces, for each epoch (fwd + bwd)
                sft = config["sft"]
                rows = max(size[coverage], config["train_batch_size"]) * sft["select_per_problem"] * sft["epochs"]
                flops = rows * 3 * forward_flops(cfg, 1, STUDENT_PROMPT, response, response)
                add("train_sft", [flops / (rate * max(utilization)) / 3600, flops / (rate * min(utilization)) / 3600])
        targets = grid.eval_targets({**config, "models": {model: spec}})
        targets += grid.curve_targets({**config, "models": {model: spec}})
        for path in targets:
            eval_set = config["eval_sets"][Path(path).stem]
            problems = eval_set["n_problems"]
            if eval_set["split"] == "subset":
                coverage = path.split("/c")[-1].split("_s")[0]
                problems = min(problems, size[coverage])
            add("evaluate", decode_hours(cfg, share, problems * eval_set["n_samples"]))
        for path in grid.teacher_targets({**config, "models": {model: spec}}):
            coverage = path.split("/c")[-1].split("_s")[0]
            add("teacher_traces", decode_hours(cfg, share, size[coverage] * config["teacher"]["n_samples"]))
        if "table1" in config:
            t1 = config["table1"]
            samples = (t1["n_candidates"] + t1["n_problems"] * len(t1["richness"])) * t1["sampling"]["n_samples"]
            add("table1", decode_hours(cfg, share, samples))
    totals["total"] = tuple(sum(v[i] for k, v in totals.items()) for i in (0, 1))
    return totals


def main():
    from selfdistill import grid
    from selfdistill.config import load_config

    parser = argparse.ArgumentParser()
    parser.add_argument("--decode-efficiency", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    parser.add_argument("--responses", type=int, nargs="+", default=[4096, 8192, 13054])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--results", default=str(ROOT / "bench/results"))
    parser.add_argument("--out", default=str(ROOT / "bench/results/paper_scale_model.json"))
    args = parser.parse_args()
    results = Path(args.results)
    measured = json.loads((results / "gpu_check.json").read_text())
    rate = measured["matmul_tflops_measured"] * 1e12
    utilization = measured_utilization(json.loads((results / "fsdp_check.json").read_text()), rate)
    lora = next(r["utilization"] for r in measured["distill_step"] if r["gradient_checkpointing"])
    config = load_config(ROOT / "config/paper.yaml")
    hp = grid.hyperparameters(config, "onpolicy", 64)
    rollouts, steps = hp["prompts_per_step"] * hp["n_rollouts"], hp["steps"]
    share = config["rollouts"]["gpu_memory_utilization"]

    rows = [
        {
            "model": name,
            "gpu": gpu_name,
            "ranks": n,
            "mean_response_tokens": response,
            **run(cfg, gpu, n, response, rollouts, steps, share, args.decode_efficiency, utilization, rate),
        }
        for name, cfg in MODELS.items()
        for gpu_name, gpu in GPUS.items()
        for n in args.ranks
        for response in args.responses
    ]
    grids = {
        f"{gpu_name}, {n} GPUs per training job, {response}-token responses": grid_gpu_hours(
            config, gpu, n, response, args.decode_efficiency, utilization, rate
        )
        for gpu_name, gpu in GPUS.items()
        for n in (4, 8)
        for response in args.responses
    }
    result = {
        "measured": {
            "matmul_tflops": rate / 1e12,
            "full_finetuning_utilization": utilization,
            "lora_distill_step_utilization (not used)": lora,
            "sources": ["bench/results/gpu_check.json", "bench/results/fsdp_check.json"],
        },
        "assumed": {
            "gpus": GPUS,
            "rollouts_per_step": rollouts,
            "steps": steps,
            "engine_share": share,
            "student_prompt_tokens": STUDENT_PROMPT,
            "teacher_context_tokens": CONTEXT,
            "decode_efficiency": args.decode_efficiency,
        },
        "rows": rows,
        "grid_gpu_hours": grids,
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"full fine-tuning utilization (measured): {', '.join(f'{u:.1%}' for u in utilization)}")
    print("\n| model | GPU | GPUs | mean response | fits | GB per GPU (sampling / stepping) | decode s/step "
          "| train s/step | hours per run |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        m = r["memory_gb"]
        print(
            f"| {r['model']} | {r['gpu']} | {r['ranks']} | {r['mean_response_tokens']:,} | "
            f"{'yes' if r['fits'] else 'no'} | {m['trainer_sampling']:.0f} + engine / {m['trainer_stepping']:.0f} | "
            f"{r['decode_s_per_step'][0]:,.0f}–{r['decode_s_per_step'][1]:,.0f} | "
            f"{r['train_s_per_step'][0]:,.0f}–{r['train_s_per_step'][1]:,.0f} | "
            f"{r['hours'][0]:,.1f}–{r['hours'][1]:,.1f} |"
        )
    print("\nGPU-hours of the whole config/paper.yaml grid:")
    for setting, totals in grids.items():
        parts = ", ".join(f"{k} {lo:,.0f}–{hi:,.0f}" for k, (lo, hi) in totals.items() if k != "total")
        print(f"- {setting}: {totals['total'][0]:,.0f}–{totals['total'][1]:,.0f} ({parts})")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
