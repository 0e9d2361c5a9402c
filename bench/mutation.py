"""Mutation testing of the numeric core: run mutmut on the functions that compute reported numbers and
write the score per module to bench/results/mutation.json (docs/mutation.md).

    pip install mutmut==3.8.1            # the `mutation` extra
    python bench/mutation.py             # every module in SCOPE, 2 mutants at a time
    python bench/mutation.py --modules selfdistill.train.losses selfdistill.stats
    python bench/mutation.py --retest    # after adding tests: the survivors only
    python bench/mutation.py --all       # after a test file changed: every mutant again
    python bench/mutation.py --report    # re-read the last run's results, run nothing

mutmut (configured in pyproject.toml) copies the package into mutants/, records which test of the
selected files calls each function, and runs each mutant against only those tests. Results persist in
mutants/: a second run tests only the mutants without one (an interrupted run resumes; mutmut resets
those of edited functions). A survivor is either killed by a test or listed in
bench/mutation_equivalent.yaml with the reason it cannot change a number; the report matches a survivor
to an entry by its function and its mutated line, so the list survives edits elsewhere.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "mutation.json"

# module -> the functions (Class.method for methods) whose mutants count; "*" = all of the module's.
# Left out, on purpose: text rendering (markdown tables, messages), process and weight plumbing (the
# grading pool's workers, the teacher's weight swaps), model and tokenizer construction, and the two long
# training loops (train_on_rollouts, pretrain), whose per-mutant cost is the whole training test set.
SCOPE = {
    "selfdistill.grading": [
        "final_segment",
        "_closing_braces",
        "last_boxed",
        "extract_answer",
        "_normalize",
        "verify",
        "grade_responses",
    ],
    "selfdistill.epistemic": ["*"],
    "selfdistill.data.coverage": ["*"],
    "selfdistill.train.losses": ["*"],
    "selfdistill.train.objectives": [
        "distill_token_loss",
        "Distillation.token_loss",
        "teacher_turns",
        "grpo_token_loss",
        "group_advantages",
        "GRPO.prepare",
        "GRPO.token_loss",
    ],
    "selfdistill.train.batching": [
        "build_batch",
        "micro_batches",
        "completion_nll_sum",
        "_packed",
        "completion_hidden",
        "completion_logits",
        "log_softmax",
        "sampled_logp",
    ],
    "selfdistill.train.step": ["*"],
    "selfdistill.train.sft": ["sft_examples", "train_sft", "select_traces"],
    "selfdistill.train.rollouts": ["rollout_rewards", "_Step.chunk", "_micro_loss", "_mini_batches"],
    "selfdistill.toy_model": ["_response_ids", "pretraining_loss"],
    "selfdistill.stats": ["*"],
    "selfdistill.organism": [
        "guess_outcomes",
        "_wait_after",
        "_accuracy",
        "gate",
        "seed_effect",
        "predict",
        "_margin",
        "sum_lengths",
        "_arm",
        "_base",
        "organism_effects",
        "_between_worlds",
        "_against_prediction",
    ],
}

EQUIVALENT = ROOT / "bench" / "mutation_equivalent.yaml"


def mutant_glob(module: str, function: str) -> str:
    """mutmut's name pattern for a function's mutants (methods are mangled as xǁClassǁmethod)."""
    if function == "*":
        return f"{module}.*"
    cls, _, name = function.rpartition(".")
    return f"{module}.xǁ{cls}ǁ{name}__mutmut_*" if cls else f"{module}.x_{function}__mutmut_*"


def run_mutmut(names: list[str], max_children: int) -> float:
    """Test the named mutants (or name patterns), every one of them again even if it has a result."""
    # One thread per mutant process: the children share the machine's cores.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.monotonic()
    subprocess.run(
        [str(Path(sys.executable).parent / "mutmut"), "run", "--max-children", str(max_children), *names],
        cwd=ROOT,
        env=env,
        check=False,  # mutmut exits non-zero when mutants survive; the report says which
    )
    return time.monotonic() - start


def in_scope(module: str, key: str) -> bool:
    """Whether mutant `key` (module.x_function__mutmut_n) belongs to a function in SCOPE[module]."""
    import fnmatch

    return any(fnmatch.fnmatchcase(key, mutant_glob(module, f)) for f in SCOPE[module])


def results(module: str) -> dict[str, str]:
    """In-scope mutant name -> mutmut's status, from the last run's files under mutants/."""
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.stats import status_by_exit_code

    data = SourceFileMutationData(path=Path(*module.split(".")).with_suffix(".py"))
    data.load()
    return {k: status_by_exit_code[c] for k, c in sorted(data.exit_code_by_key.items()) if in_scope(module, k)}


def function_of(key: str) -> str:
    name = key.rpartition(".")[2].split("__mutmut_")[0]
    return ".".join(part for part in name.removeprefix("x_").removeprefix("x").split("ǁ") if part)


def mutated_lines(diff: str) -> str:
    return "\n".join(line[1:].strip() for line in diff.splitlines() if line.startswith("+") and line[1:2] != "+")


def report(runs: list[dict], machine: str) -> dict:
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    entries = yaml.safe_load(EQUIVALENT.read_text())
    for e in entries:
        if not all(isinstance(line, str) for line in e["mutated"]):
            raise ValueError(f"{EQUIVALENT}: quote the mutated lines of {e['function']} (a ': ' makes YAML a mapping)")
    equivalent = {(e["module"], e["function"], line): e["reason"] for e in entries for line in e["mutated"]}
    used, table, survivors, listed = set(), {}, [], []
    for module in SCOPE:
        path = Path(*module.split(".")).with_suffix(".py")
        counts = Counter()
        for key, status in results(module).items():
            if status == "survived":
                diff = get_diff_for_mutant(key, path=path)
                match = (module, function_of(key), mutated_lines(diff))
                if match in equivalent:
                    used.add(match)
                    status = "equivalent"
                    listed.append({"mutant": key, "mutated": match[2], "reason": equivalent[match]})
                else:
                    survivors.append({"mutant": key, "diff": diff})
            counts[status] += 1
        counts["mutants"] = sum(counts.values())
        decided = counts["killed"] + counts["timeout"] + counts["equivalent"]
        tested = counts["mutants"] - counts["not checked"]
        counts["score"] = round(decided / tested, 4) if tested else None
        table[module] = dict(counts)
    return {
        "tool": "mutmut " + _version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores" + (f", {machine}" if machine else ""),
        "runs": runs,
        "scope": SCOPE,
        "per_module": table,
        "equivalent": listed,
        "unused_equivalent_entries": [list(k) for k in equivalent if k not in used],
        "survived": survivors,
    }


def _version() -> str:
    from importlib.metadata import version

    return version("mutmut")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modules", nargs="+", choices=list(SCOPE), default=list(SCOPE))
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested at once (default 2 cores)")
    parser.add_argument("--report", action="store_true", help="only re-read the last run's results")
    parser.add_argument("--markdown", action="store_true", help="also print the equivalent mutants, for the docs")
    parser.add_argument("--machine", default="", help="what else ran on the machine, for the record")
    parser.add_argument(
        "--all",
        action="store_true",
        help="every mutant in scope again (after a test file changed: mutmut keeps the old results otherwise)",
    )
    parser.add_argument(
        "--retest",
        action="store_true",
        help="re-test only the survivors and those no test reached (after adding tests)",
    )
    args = parser.parse_args()
    os.chdir(ROOT)  # mutmut reads pyproject.toml and mutants/ from the working directory
    if not (ROOT / "mutants").exists():  # the first run: mutmut makes the mutants
        names = [mutant_glob(m, f) for m in args.modules for f in SCOPE[m]]
    else:  # mutmut re-tests every mutant it is given by name: give it those without a result
        redo = ("survived", "no tests") if args.retest else ("not checked",)
        names = [k for m in args.modules for k, status in results(m).items() if args.all or status in redo]
    runs = json.loads(RESULTS.read_text()).get("runs", []) if RESULTS.exists() else []
    if not args.report and names:
        wall = run_mutmut(names, args.max_children)
        date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        runs.append(
            {"command": " ".join(["python bench/mutation.py", *sys.argv[1:]]), "ended": date, "wall_s": round(wall)}
        )
    result = report(runs, args.machine)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(RESULTS)
    print(markdown(result, args.markdown))


def markdown(result: dict, with_equivalents: bool) -> str:
    """The score table (and the equivalent mutants) as docs/mutation.md shows them."""
    lines = [
        "| module | mutants | killed | timeout | equivalent | survived | no test reaches it | not run | score |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for module, c in result["per_module"].items():
        score = "-" if c["score"] is None else f"{100 * c['score']:.1f}%"
        counts = (c.get(k, 0) for k in ("killed", "timeout", "equivalent", "survived", "no tests", "not checked"))
        lines.append(f"| `{module}` | {c['mutants']} | " + " | ".join(map(str, counts)) + f" | {score} |")
    if with_equivalents:
        lines.append("")
        for e in result["equivalent"]:
            module = e["mutant"].partition(".x")[0]
            lines.append(f"- `{module}` `{function_of(e['mutant'])}`: `{e['mutated']}` ({e['reason']})")
    lines.append(f"\n{len(result['survived'])} survivors (diffs in {RESULTS.relative_to(ROOT)})")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
