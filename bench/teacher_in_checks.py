"""Where the solution-conditioned teacher diverges from the student inside the student's own checks
(issue 22, "Likely cause"), per token class, on a pretrained draw's base model.

    python bench/teacher_in_checks.py --results results --models toy_s0 toy_s1

At the start of on-policy training the teacher is the student's own frozen model with the solution in
its prompt. For the base model's free responses that check (eval sets `test`, in domain, the lengths
training distills on, and `ood`), both score the response token by token (temperature 1, as the loss):
per token class (the guess, `Hmm`, chain operands, chain results, `Yes`/`Wait`, the restated guess,
the correction, the final answer, other) the mean generalized JSD (alpha 0.5, full vocabulary: the
default loss), the probability each gives the response's token, and on chain result digits whether
each one's argmax is the arithmetically right digit (given the operands the response shows and the
result's digits before it). Writes bench/results/teacher_in_checks.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from selfdistill import prompts  # noqa: E402
from selfdistill.config import load_config  # noqa: E402
from selfdistill.models import load_model, load_tokenizer  # noqa: E402
from selfdistill.settings.prompts import Prompts  # noqa: E402

CHECK = re.compile(r"let me check:(.*?)(?= I guessed|</think>)")
SPANS = {  # class -> pattern whose group 1 is the class's characters (first match per response)
    "guess": re.compile(r"^<think>Guess: (\d+)"),
    "Hmm": re.compile(r"(Hmm)"),
    "Yes/Wait": re.compile(r"\. (Yes|Wait)"),
    "restated guess": re.compile(r"I guessed (\d+)"),
    "correction": re.compile(r"It is (\d+)"),
    "final answer": re.compile(r"\\boxed\{(\d+)\}"),
}
STEP = re.compile(r"(\d+)\+(\d+)=(\d+)")


def token_classes(pieces: list[str]) -> tuple[list[str], dict[int, str]]:
    """Each token's class, and for chain result digits the right digit (token index -> digit)."""
    starts = np.cumsum([0] + [len(p) for p in pieces[:-1]])
    text = "".join(pieces)
    by_char = ["other"] * len(text)
    right_digit = {}
    for name, pattern in SPANS.items():
        m = pattern.search(text)
        if m:
            by_char[m.start(1) : m.end(1)] = [name] * (m.end(1) - m.start(1))
    check = CHECK.search(text)
    if check:
        for step in STEP.finditer(text, check.start(1), check.end(1)):
            for g in (1, 2):
                by_char[step.start(g) : step.end(g)] = ["chain operand"] * (step.end(g) - step.start(g))
            shown, truth = step.group(3), str(int(step.group(1)) + int(step.group(2)))
            by_char[step.start(3) : step.end(3)] = ["chain result"] * len(shown)
            for j in range(min(len(shown), len(truth))):
                if shown[:j] != truth[:j]:
                    break
                right_digit[step.start(3) + j] = truth[j]
    char_to_token = {int(s): k for k, s in enumerate(starts)}
    # a token takes the class of its last character (" Hmm" is Hmm, not its space)
    classes = [by_char[s + len(p) - 1] if p else "other" for s, p in zip(starts, pieces, strict=True)]
    return classes, {char_to_token[c]: d for c, d in right_digit.items() if c in char_to_token}


def jsd(logp_teacher: torch.Tensor, logp_student: torch.Tensor) -> torch.Tensor:
    """Generalized JSD with alpha 0.5 per position (rows of log-probabilities)."""
    m = torch.logsumexp(torch.stack([logp_teacher, logp_student]), 0) - np.log(2)
    kl = lambda p: (p.exp() * (p - m)).sum(-1)  # noqa: E731
    return 0.5 * kl(logp_teacher) + 0.5 * kl(logp_student)


@torch.no_grad()
def completion_logp(model, prompt: list[int], completion: list[int]) -> torch.Tensor:
    ids = torch.tensor([prompt + completion])
    logits = model(ids).logits[0, len(prompt) - 1 : len(prompt) + len(completion) - 1]
    return torch.log_softmax(logits.float(), -1)


def measure(model, tokenizer, templates: Prompts, samples: pd.DataFrame, problems: pd.DataFrame) -> pd.DataFrame:
    """One row per token of the responses that check: class, JSD, the two probabilities of the
    token, and for chain result digits whether each argmax is the right digit."""
    rows = []
    for s in samples.itertuples():
        problem = problems.loc[s.problem_id]
        completion = [int(t) for t in s.token_ids]
        student = prompts.prompt_ids(tokenizer, prompts.student_user_turn(templates.student, problem.problem))
        turn = prompts.teacher_user_turn(templates, "solution", problem.problem, problem.answer, problem.solution)
        lp_s = completion_logp(model, student, completion)
        lp_t = completion_logp(model, prompts.prompt_ids(tokenizer, turn), completion)
        classes, right = token_classes([tokenizer.decode([t]) for t in completion])
        divergence = jsd(lp_t, lp_s)
        for k, token in enumerate(completion):
            target = tokenizer.convert_tokens_to_ids(right[k]) if k in right else None
            rows.append(
                {
                    "problem_id": s.problem_id,
                    "sample": s.sample,
                    "position": k,
                    "class": classes[k],
                    "jsd": float(divergence[k]),
                    "p_teacher": float(lp_t[k, token].exp()),
                    "p_student": float(lp_s[k, token].exp()),
                    "teacher_right": float(lp_t[k].argmax() == target) if target is not None else np.nan,
                    "student_right": float(lp_s[k].argmax() == target) if target is not None else np.nan,
                }
            )
    return pd.DataFrame(rows)


def summarize(tokens: pd.DataFrame) -> pd.DataFrame:
    return tokens.groupby("class").agg(
        tokens=("jsd", "size"),
        jsd=("jsd", "mean"),
        p_teacher=("p_teacher", "mean"),
        p_student=("p_student", "mean"),
        teacher_argmax_right=("teacher_right", "mean"),
        student_argmax_right=("student_right", "mean"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--models", nargs="+", required=True, help="toy models (pretrained draws) to measure")
    parser.add_argument("--config", default="config/draws.yaml")
    parser.add_argument("--eval-sets", nargs="+", default=["test", "ood"])
    parser.add_argument("--max-responses", type=int, default=128, help="responses that check, per eval set")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "teacher_in_checks.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    templates = Prompts(**load_config(args.config)["prompts"])
    problems = pd.read_parquet(args.results / "data" / "toy.parquet").set_index("problem_id")
    report = {"config": args.config, "max_responses": args.max_responses, "draws": {}}
    for name in args.models:
        path = str(args.results / "models" / name / "hf")
        model, tokenizer = load_model(path).eval(), load_tokenizer(path)
        report["draws"][name] = {}
        for eval_set in args.eval_sets:
            samples = pd.read_parquet(args.results / name / "eval" / "base" / f"{eval_set}.parquet")
            checking = samples[samples["response"].str.contains("let me check", regex=False)].head(args.max_responses)
            table = summarize(measure(model, tokenizer, templates, checking, problems))
            report["draws"][name][eval_set] = {
                "responses": len(checking),
                "classes": table.reset_index().to_dict("records"),
            }
            print(f"\n{name}, {eval_set} ({len(checking)} responses that check)\n{table.round(3).to_string()}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
