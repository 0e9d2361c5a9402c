"""Answer extraction and equivalence checking.

Extraction is ours (the last boxed answer after </think>), so a response that self-corrects
("\\boxed{3} ... wait, actually \\boxed{4}") is graded on its final answer. It is linear in the
response's length: degenerate RL responses (repetition loops of 40k tokens) cost milliseconds.
Equivalence goes through math-verify in worker processes with a hard per-answer timeout: a worker
that overruns is killed and replaced, so a pathological answer can never hang the pool.
"""

from __future__ import annotations

import multiprocessing as mp
import re
import time
from multiprocessing.connection import wait

from selfdistill.settings.grading import GradingConfig

THINK_END = "</think>"
# \boxed, \fbox or \framebox as a whole control word, then optional spaces: `\boxed{5}`,
# `\boxed {5}`, `\fbox{6}`, and the brace-less `\boxed 5` models also write.
_BOX = re.compile(r"\\(?:boxed|fbox|framebox)(?![A-Za-z])\s*")
# A brace-less box holds one token: up to a space, a `$` or a brace.
_BARE_TOKEN = re.compile(r"[^\s${}]+")
_BRACES = re.compile(r"[{}]")
# Results of a worker process (pool statuses besides "ok" and "error: ...").
TIMEOUT, NO_BOXED, TOO_LONG = "timeout", "no_boxed", "too_long"


def final_segment(response: str) -> str | None:
    """The part of a response that carries the answer: after the last </think>.

    A response that opened <think> but never closed it has no answer segment (None).
    """
    if THINK_END in response:
        return response.rsplit(THINK_END, 1)[1]
    if "<think>" in response:
        return None
    return response


def _closing_braces(text: str, start: int) -> dict[int, int]:
    """Position of each `{` at or after `start` -> position of the `}` that closes it (one pass)."""
    closing, stack = {}, []
    for match in _BRACES.finditer(text, start):
        if match.group() == "{":
            stack.append(match.start())
        elif stack:
            closing[stack.pop()] = match.start()
    return closing


def last_boxed(text: str) -> str | None:
    """Content of the last boxed answer (`\\boxed{…}` brace-matched, `\\boxed {…}`, `\\fbox{…}`,
    or the one token of a brace-less `\\boxed 5`), or None if there is none.

    An unbalanced last box (`\\boxed{6` at the end of a cut-off response) falls back to an earlier
    one. Linear in len(text): all braces are matched in one pass.
    """
    boxes = list(_BOX.finditer(text))
    if not boxes:
        return None
    closing = _closing_braces(text, boxes[0].end())
    for box in reversed(boxes):
        at = box.end()
        if text.startswith("{", at):
            end = closing.get(at)
            if end is not None:
                return text[at + 1 : end]
            continue
        bare = _BARE_TOKEN.match(text, at)
        if bare and bare.group().rstrip(".,;:"):
            return bare.group().rstrip(".,;:")
    return None


def extract_answer(response: str) -> str | None:
    segment = final_segment(response)
    return None if segment is None else last_boxed(segment)


def _normalize(answer: str) -> str:
    return "".join(answer.split()).rstrip(".")


def _parse(answer: str):
    """math-verify's reading of a bare answer, by its LaTeX extractor only, as the content of a box.

    No expression-extractor fallback: on an answer it cannot read whole (math-verify gives up
    around 2,000 characters), that fallback returns the answer's first number, so
    `\\boxed{7+x+…+9}` would equal 7. Unreadable answers come back as their raw string only.
    """
    from math_verify import LatexExtractionConfig, parse

    return parse("\\boxed{" + answer + "}", extraction_config=[LatexExtractionConfig()])


def verify(gold: str, predicted: str) -> bool:
    """math-verify equivalence of two bare answers (runs in the calling process)."""
    if _normalize(gold) == _normalize(predicted):
        return True
    from math_verify import verify as mv_verify

    return bool(mv_verify(_parse(gold), _parse(predicted)))


def parses(answer: str) -> bool:
    """Whether math-verify reads a gold answer as an expression (it returns only the raw string
    when it cannot, e.g. for "\\frac{1}{"; text answers like "\\text{east}" parse as symbols)."""
    return any(not isinstance(value, str) for value in _parse(answer))


def worker_setup() -> None:
    """Run by each worker before it takes answers, so the import is not charged to an answer."""
    import math_verify  # noqa: F401


def _worker(conn):
    worker_setup()
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


class _Worker:
    """One worker process and its pipe; `task` and `deadline` are set while it grades an answer."""

    def __init__(self, ctx):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.ready = False  # until it has sent "ready": it may still be importing math-verify
        self.task, self.deadline = None, None

    def kill(self):
        self.proc.kill()
        self.proc.join()
        self.conn.close()


class GradingPool:
    """A process pool whose workers are killed when one answer overruns `timeout` seconds.

    Each answer's deadline counts from when a ready worker received it. A killed worker's
    replacement starts in the background (importing math-verify takes seconds) while the other
    workers go on grading, so one timeout never costs another answer its time.
    """

    def __init__(self, workers: int = 2, timeout: float = 5.0):
        self.timeout = timeout
        # fork: spawn and forkserver re-import the main module, which Snakemake scripts do not guard.
        self._ctx = mp.get_context("fork")
        self._workers = [_Worker(self._ctx) for _ in range(max(1, workers))]

    def map(self, pairs):
        """Grade (gold, predicted) pairs; returns a list of (correct: bool, status: str).

        status is "ok", "error: ..." (unparsable: graded wrong) or "timeout" (graded wrong).
        """
        pairs = list(pairs)
        results = [None] * len(pairs)
        pending = list(range(len(pairs)))[::-1]
        while pending or any(w.task is not None for w in self._workers):
            for i, w in enumerate(self._workers):
                if w.ready and w.task is None and pending:
                    try:
                        w.conn.send(pairs[pending[-1]])
                    except OSError:  # it died while idle: replace it, the answer waits
                        self._replace(i)
                        continue
                    w.task, w.deadline = pending.pop(), time.monotonic() + self.timeout
            deadlines = [w.deadline for w in self._workers if w.task is not None]
            wait_for = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            ready = wait([w.conn for w in self._workers if not w.ready or w.task is not None], timeout=wait_for)
            for i, w in enumerate(self._workers):
                if not w.ready:
                    if w.conn in ready:
                        self._started(i)
                elif w.task is not None and (w.conn in ready or w.conn.poll()):
                    try:
                        kind, value = w.conn.recv()
                        results[w.task] = (value, "ok") if kind == "ok" else (False, f"error: {value}")
                        w.task = None
                    except EOFError:  # the worker died (e.g. out of memory): wrong, and replace it
                        results[w.task] = (False, "error: worker died")
                        self._replace(i)
                elif w.task is not None and time.monotonic() >= w.deadline:
                    results[w.task] = (False, TIMEOUT)
                    self._replace(i)
        return results

    def _started(self, i):
        try:
            self._workers[i].conn.recv()  # "ready"
            self._workers[i].ready = True
        except EOFError as exc:
            raise RuntimeError("a grading worker died while starting (importing math-verify)") from exc

    def _replace(self, i):
        self._workers[i].kill()
        self._workers[i] = _Worker(self._ctx)

    def close(self):
        for w in self._workers:
            if w.ready and w.task is None:
                try:
                    w.conn.send(None)
                except OSError:
                    pass
                w.proc.join(timeout=1)
            w.kill()
        self._workers = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def grade_responses(responses, golds, grading: GradingConfig):
    """Extract and grade; returns a list of dicts with extracted, correct, grade_status.

    grade_status: "ok", "error: …", "timeout", "no_boxed" (no answer), or "too_long" (an extracted
    answer over `max_answer_chars`).
    """
    extracted = [extract_answer(r) for r in responses]
    status = {
        i: NO_BOXED if e is None else TOO_LONG
        for i, e in enumerate(extracted)
        if e is None or len(e) > grading.max_answer_chars
    }
    to_check = [i for i in range(len(extracted)) if i not in status]
    checked = {}
    if to_check:
        # Imported here once, so every forked worker starts with it (0.3 s saved per call: per training
        # step and per evaluation job); a replacement worker after a timeout starts as fast.
        import math_verify  # noqa: F401

        with GradingPool(grading.workers, grading.timeout_s) as pool:
            checked = dict(zip(to_check, pool.map([(golds[i], extracted[i]) for i in to_check]), strict=True))
    rows = []
    for i, answer in enumerate(extracted):
        correct, grade_status = checked.get(i, (False, status.get(i)))
        rows.append({"extracted": answer, "correct": bool(correct), "grade_status": grade_status})
    return rows
