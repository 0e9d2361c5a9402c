"""Per-token divergences between student and teacher, and the uncertainty-ablation targets.

All functions work on log-probabilities over a shared support (last dim): the full vocabulary,
or k ids (the student's or the teacher's top-k) plus one tail bucket. Shapes: [..., support].
"""

from __future__ import annotations

import math

import torch


def _kl(log_a: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """KL(a‖b) over the last dim; terms where a = 0 contribute 0 (even where b = 0 too).

    The mask is applied before the product, so such terms also get a zero gradient rather than
    0 · ∞ = NaN (a `-inf` logit is a zero probability, not an error).
    """
    a = log_a.exp()
    return (a * torch.where(a > 0, log_a - log_b, 0.0)).sum(-1)


def _log_mixture(teacher_logp: torch.Tensor, student_logp: torch.Tensor, alpha: float) -> torch.Tensor:
    """log(α·t + (1-α)·s); where both are zero it is -inf with a zero (not NaN) gradient."""
    both_zero = torch.isneginf(teacher_logp) & torch.isneginf(student_logp)
    log_m = torch.logaddexp(
        teacher_logp.masked_fill(both_zero, 0.0) + math.log(alpha),
        student_logp.masked_fill(both_zero, 0.0) + math.log(1 - alpha),
    )
    return log_m.masked_fill(both_zero, float("-inf"))


def generalized_jsd(student_logp: torch.Tensor, teacher_logp: torch.Tensor, alpha: float) -> torch.Tensor:
    """SDPO's generalized Jensen-Shannon divergence (the paper's method; also TRL's and GKD's):
    α·KL(t‖m) + (1-α)·KL(s‖m) with m = α·t + (1-α)·s, for 0 < α < 1.

    α = 0 is forward KL(teacher‖student), α = 1 reverse KL(student‖teacher), α = 0.5 the
    Jensen-Shannon divergence. The ends are set, not limits: as α → 0 the mixture form tends to
    α·KL(t‖s), and as α → 1 to (1-α)·KL(s‖t). Reverse KL is infinite where the teacher has zero
    mass and the student has some (e.g. the `suppress` target with α = 1; the config refuses it).
    """
    if alpha == 0.0:
        return _kl(teacher_logp, student_logp)
    if alpha == 1.0:
        return _kl(student_logp, teacher_logp)
    log_m = _log_mixture(teacher_logp, student_logp, alpha)
    return alpha * _kl(teacher_logp, log_m) + (1 - alpha) * _kl(student_logp, log_m)


def topk_tail(student_logp: torch.Tensor, teacher_logp: torch.Tensor, k: int):
    """Restrict both full-vocabulary distributions to the student's top-k ids plus one tail bucket
    holding the remaining mass. Returns (student, teacher, ids) with support k+1 (k ids, then tail)."""
    ids = student_logp.topk(k, dim=-1).indices
    return with_tail(student_logp.gather(-1, ids)), with_tail(teacher_logp.gather(-1, ids)), ids


def with_tail(top_logp: torch.Tensor) -> torch.Tensor:
    """Log-probs of k ids, then one bucket for the rest of the mass."""
    return torch.cat([top_logp, _log_tail(top_logp)], -1)


def _log_tail(top_logp: torch.Tensor) -> torch.Tensor:
    """log(1 - Σ exp(top)), kept finite when the top-k hold (almost) all the mass."""
    covered = torch.logsumexp(top_logp, -1, keepdim=True).clamp(max=-1e-7)
    return torch.log(-torch.expm1(covered))


def ablation_target(teacher_logp: torch.Tensor, student_logp: torch.Tensor, in_e: torch.Tensor, mode: str):
    """The teacher target q̃ for the uncertainty ablation.

    in_e marks support entries that begin an epistemic word (the set E; a tail bucket is never in E).
    standard: q̃ = q. preserve: q̃ = the student's own detached p on E, and q rescaled into the
    remaining mass off E, so the teacher cannot move the student's propensity to hedge.
    suppress: q̃(E) = 0 and q renormalized off E.
    """
    if mode == "standard":
        return teacher_logp
    neg_inf = torch.full_like(teacher_logp, float("-inf"))
    q_off_e = torch.where(in_e, neg_inf, teacher_logp)
    log_q_off_total = torch.logsumexp(q_off_e, -1, keepdim=True)  # log(1 - q(E))
    if mode == "suppress":
        return q_off_e - log_q_off_total
    if mode == "preserve":
        p = student_logp.detach()
        log_p_e = torch.logsumexp(torch.where(in_e, p, neg_inf), -1, keepdim=True)
        log_rest = torch.log(-torch.expm1(log_p_e.clamp(max=-1e-7)))  # log(1 - p(E))
        return torch.where(in_e, p, q_off_e - log_q_off_total + log_rest)
    raise ValueError(f"unknown ablation {mode!r}: use standard, preserve or suppress")
