"""The toy worlds: chained single-digit additions, worked solutions, and pretraining traces.

Three worlds share problems, prompts and solutions and differ in how an unguided trace thinks:

- `guess_check` (the default): guess the whole sum in one shot, then, in a share `p_check` of
  traces, "Hmm, let me check:" by the step-by-step chain, ending "Yes." or "Wait, that seems
  wrong. It is S." The check fires whether or not the guess was right, and a wrong guess gets no
  loss in pretraining (the model never learns to err on purpose: its wrong guesses are its own).
  A one-shot sum of 2-3 terms is easy and of 5-6 terms hard, while the chain is reliable at
  both, so checking is worth accuracy out of domain and little in domain.
- `null`: the same grammar, but checking cannot help: the "check" is a second one-shot guess
  (`null_check: guess`), or the guess_check world's chain and verdict with the answer left at the
  guess (`null_check: chain`: the same check, token for token, whose result is ignored). The
  mechanism's evidence is the difference between this world and `guess_check`.
- `chain`: the step-by-step chain, with slips that are corrected aloud and right steps re-checked
  aloud (the first world; its hedges carry no information about errors, see docs/organism.md).

Traces written with a solution or answer in context copy the answer and check only in a share
`p_check_guided` of them (0 by default: never), with the unguided traces' check: the teacher the
paper describes, which rarely verbalizes checking; with a share above 0 it is also competent inside
a check it rarely starts. Nothing about the distillation outcome is built in.
"""

from __future__ import annotations

import random

import pandas as pd

from selfdistill.data import TOY_SPLITS
from selfdistill.settings.data import ToyDataConfig

# Phrases the unguided traces use when a step went wrong, and when re-checking a right step.
_CORRECTIONS = (
    "Wait, that seems wrong. {step}",
    "Hmm, let me check. {step}",
    "Wait, actually {step}",
)
_VERIFICATIONS = (
    "Hmm, let me check: {step} Yes.",
    "Maybe I should check: {step} Yes.",
)


def problem_text(terms) -> str:
    return "Compute " + "+".join(map(str, terms)) + "."


def steps(terms):
    """(left, right, result) for each partial sum."""
    out, total = [], terms[0]
    for t in terms[1:]:
        out.append((total, t, total + t))
        total += t
    return out


def _step(a, b, r) -> str:
    return f"{a}+{b}={r}."


def solution_text(terms) -> str:
    body = " ".join(_step(*s) for s in steps(terms))
    return f"<think>{body}</think> The answer is \\boxed{{{sum(terms)}}}."


def unguided_trace(terms, rng: random.Random, p_error: float, p_verify: float) -> str:
    """A trace of the model thinking alone: slips, hedges and self-corrections."""
    parts = []
    for a, b, r in steps(terms):
        if rng.random() < p_error:
            wrong = r + rng.choice((-2, -1, 1, 2, 10, -10))
            wrong = wrong if wrong >= 0 and wrong != r else r + 1
            parts.append(_step(a, b, wrong))
            parts.append(rng.choice(_CORRECTIONS).format(step=_step(a, b, r)))
        else:
            parts.append(_step(a, b, r))
            if rng.random() < p_verify:
                parts.append(rng.choice(_VERIFICATIONS).format(step=_step(a, b, r)))
    return "<think>" + " ".join(parts) + f"</think> The answer is \\boxed{{{sum(terms)}}}."


WORLDS = ("guess_check", "null", "chain")


def _guess(rng: random.Random, terms, p_wrong: float, max_terms: int) -> tuple[int, bool]:
    """A shown guess and whether it is right: the guesser is right with chance 1 - p_wrong up to
    max_terms terms and never beyond (a one-shot sum gets harder with more terms); wrong guesses
    are near misses, and get no loss."""
    total = sum(terms)
    if len(terms) <= max_terms and rng.random() >= p_wrong:
        return total, True
    return max(0, total + rng.choice((-3, -2, -1, 1, 2, 3))), False


def guess_trace(
    terms,
    rng: random.Random,
    world: str,
    p_check: float,
    p_wrong_guess: float,
    guess_max_terms: int,
    null_check: str = "guess",
):
    """An unguided trace of a guess world as (text, trained) segments: a wrong guess is not trained."""
    guess, right = _guess(rng, terms, p_wrong_guess, guess_max_terms)
    segments = [("<think>Guess: ", True), (str(guess), right)]
    if rng.random() >= p_check:  # no check: the guess is the answer
        return [*segments, (f".</think> The answer is \\boxed{{{guess}}}.", True)]
    if world == "guess_check" or null_check == "chain":  # an independent route: the chain, reliable at every length
        checked = sum(terms)
        segments.append((". Hmm, let me check: " + " ".join(_step(*s) for s in steps(terms)), True))
    else:  # null: a second one-shot guess, no more reliable than the first
        checked, checked_right = _guess(rng, terms, p_wrong_guess, guess_max_terms)
        segments += [(". Hmm, let me check: Guess: ", True), (str(checked), checked_right), (".", True)]
    # The guess restated beside the checked value, so the verdict compares neighbours.
    verdict = "Yes." if checked == guess else f"Wait, that seems wrong. It is {checked}."
    answer = guess if world == "null" and null_check == "chain" else checked  # the ignored check keeps the guess
    return [*segments, (f" I guessed {guess}. {verdict}</think> The answer is \\boxed{{{answer}}}.", True)]


def guided_guess_trace(terms, rng: random.Random, traces) -> list[tuple[str, bool]]:
    """A guess-world trace written with the solution or answer in context, as segments: copy the
    answer, or in a share traces.p_check_guided check first, as an unguided trace does."""
    if traces.p_check_guided and rng.random() < traces.p_check_guided:  # no draw at 0: corpora stay as they were
        return guess_trace(
            terms, rng, traces.world, 1.0, traces.p_wrong_guess, traces.guess_max_terms, traces.null_check
        )
    return [(f"<think>Guess: {sum(terms)}.</think> The answer is \\boxed{{{sum(terms)}}}.", True)]


def sample_terms(rng: random.Random, n_terms_range, max_operand: int):
    n = rng.randint(*n_terms_range)
    return [rng.randint(2, max_operand) for _ in range(n)]


def _distinct_problems(rng, n, n_terms_range, max_operand, exclude):
    out, seen = [], set(exclude)
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 100 * n + 1000:
            raise ValueError(
                f"cannot draw {n} distinct toy problems with terms {n_terms_range} and operands 2..{max_operand}: "
                "lower the split size or widen terms/max_operand in the toy dataset config"
            )
        terms = sample_terms(rng, n_terms_range, max_operand)
        text = problem_text(terms)
        if text not in seen:
            seen.add(text)
            out.append(terms)
    return out


def generate_problems(spec: ToyDataConfig) -> pd.DataFrame:
    """The toy dataset in the normalized problem schema, splits train / test / ood."""
    rng = random.Random(spec.seed)
    rows, used = [], set()
    sizes = (spec.n_train, spec.n_test, spec.n_ood)
    for split, n, terms_range in zip(
        TOY_SPLITS, sizes, (spec.train_terms, spec.train_terms, spec.ood_terms), strict=True
    ):
        for i, terms in enumerate(_distinct_problems(rng, n, terms_range, spec.max_operand, used)):
            text = problem_text(terms)
            used.add(text)
            rows.append(
                {
                    "problem_id": f"toy-{split}-{i:05d}",
                    "problem": text,
                    "solution": solution_text(terms),
                    "answer": str(sum(terms)),
                    "source": "toy",
                    "split": split,
                }
            )
    return pd.DataFrame(rows)


def parse_terms(problem: str):
    return [int(t) for t in problem.removeprefix("Compute ").rstrip(".").split("+")]
