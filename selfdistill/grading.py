"""Answer extraction and equivalence checking.

Extraction is ours (last brace-matched \\boxed{} after </think>), so a response that
self-corrects ("\\boxed{3} ... wait, actually \\boxed{4}") is graded on its final answer.
Equivalence goes through math-verify in worker processes with a hard per-answer timeout:
a worker that overruns is killed and replaced, so a pathological answer can never hang the pool.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from multiprocessing.connection import wait

THINK_END = "</think>"


def final_segment(response: str) -> str | None:
    """The part of a response that carries the answer: after the last </think>.

    A response that opened <think> but never closed it has no answer segment (None).
    """
    if THINK_END in response:
        return response.rsplit(THINK_END, 1)[1]
    if "<think>" in response:
        return None
    return response


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} with matched braces, or None if there is none."""
    start = text.rfind("\\boxed{")
    while start != -1:
        depth = 0
        for i in range(start + len("\\boxed"), len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    return text[start + len("\\boxed{") : i]
        # Unbalanced: try an earlier \boxed.
        start = text.rfind("\\boxed{", 0, start)
    return None


def extract_answer(response: str) -> str | None:
    segment = final_segment(response)
    return None if segment is None else last_boxed(segment)


def _normalize(answer: str) -> str:
    return "".join(answer.split()).rstrip(".")


def verify(gold: str, predicted: str) -> bool:
    """math-verify equivalence of two bare answers (runs in the calling process)."""
    if _normalize(gold) == _normalize(predicted):
        return True
    from math_verify import parse, verify as mv_verify

    def as_latex(answer):
        return parse("$" + answer + "$")

    return bool(mv_verify(as_latex(gold), as_latex(predicted)))


def parses(answer: str) -> bool:
    """Whether math-verify reads a gold answer as an expression (it returns only the raw string
    when it cannot, e.g. for "\\frac{1}{"; text answers like "\\text{east}" parse as symbols)."""
    from math_verify import parse

    return any(not isinstance(value, str) for value in parse("$" + answer + "$"))


def _worker(conn):
    import math_verify  # noqa: F401  (imported before "ready" so the import is not charged to an answer)

    conn.send("ready")
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        gold, predicted = task
        try:
            conn.send(("ok", verify(gold, predicted)))
        except Exception as exc:  # an unparsable answer is wrong, not a crash
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class GradingPool:
    """A process pool whose workers are killed when one answer overruns `timeout` seconds."""

    def __init__(self, workers: int = 2, timeout: float = 5.0):
        self.timeout = timeout
        # fork: spawn and forkserver re-import the main module, which Snakemake scripts do not guard.
        self._ctx = mp.get_context("fork")
        self._workers = [self._start() for _ in range(max(1, workers))]

    def _start(self):
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_worker, args=(child,), daemon=True)
        proc.start()
        child.close()
        parent.recv()  # "ready"
        return proc, parent

    def map(self, pairs):
        """Grade (gold, predicted) pairs; returns a list of (correct: bool, status: str).

        status is "ok", "error: ..." (unparsable: graded wrong) or "timeout" (graded wrong).
        """
        pairs = list(pairs)
        results = [None] * len(pairs)
        pending = list(range(len(pairs)))[::-1]
        busy = {}  # worker index -> (task index, deadline)
        while pending or busy:
            for w in range(len(self._workers)):
                if w not in busy and pending:
                    task = pending.pop()
                    self._workers[w][1].send(pairs[task])
                    busy[w] = (task, time.monotonic() + self.timeout)
            next_deadline = min(deadline for _, deadline in busy.values())
            ready = wait([self._workers[w][1] for w in busy], timeout=max(0.0, next_deadline - time.monotonic()))
            for w in list(busy):
                task, deadline = busy[w]
                conn = self._workers[w][1]
                if conn in ready:
                    try:
                        kind, value = conn.recv()
                    except EOFError:  # the worker died (e.g. out of memory): wrong, and replace it
                        kind, value = "error", "worker died"
                        self._replace(w)
                    results[task] = (value, "ok") if kind == "ok" else (False, f"error: {value}")
                    del busy[w]
                elif time.monotonic() >= deadline:
                    self._replace(w)
                    results[task] = (False, "timeout")
                    del busy[w]
        return results

    def _replace(self, w):
        proc, conn = self._workers[w]
        proc.kill()
        proc.join()
        conn.close()
        self._workers[w] = self._start()

    def close(self):
        for proc, conn in self._workers:
            try:
                conn.send(None)
            except OSError:
                pass
            proc.join(timeout=1)
            if proc.is_alive():
                proc.kill()
                proc.join()
            conn.close()
        self._workers = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def grade_responses(responses, golds, workers: int = 2, timeout: float = 5.0):
    """Extract and grade; returns a list of dicts with extracted, correct, grade_status."""
    extracted = [extract_answer(r) for r in responses]
    to_check = [i for i, e in enumerate(extracted) if e is not None]
    checked = {}
    if to_check:
        with GradingPool(workers, timeout) as pool:
            checked = dict(zip(to_check, pool.map([(golds[i], extracted[i]) for i in to_check])))
    rows = []
    for i, answer in enumerate(extracted):
        correct, status = checked.get(i, (False, "no_boxed"))
        rows.append({"extracted": answer, "correct": bool(correct), "grade_status": status})
    return rows
