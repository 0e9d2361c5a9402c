"""Prompt + completion batches: completion-only masks, final hidden states at completion positions,
and token log-probabilities."""

from __future__ import annotations

import torch

IGNORE = -100


def build_batch(prompts: list[list[int]], completions: list[list[int]], pad_id: int) -> dict:
    """Right-padded input_ids / attention_mask / labels.

    Labels are -100 on prompt and padding positions only, decided by position and never by
    token value, so an EOS inside the completion keeps its label even when pad_id == eos_id.
    """
    lengths = [len(p) + len(c) for p, c in zip(prompts, completions, strict=True)]
    width = max(lengths)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    labels = torch.full((len(prompts), width), IGNORE, dtype=torch.long)
    for row, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        n = len(p) + len(c)
        input_ids[row, :n] = torch.tensor(p + c)
        attention[row, :n] = 1
        labels[row, len(p) : n] = torch.tensor(c)
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def micro_batches(indices, size: int, length) -> list[list]:
    """`indices` in micro-batches of `size`, by ascending `length(index)` (prompt + completion
    tokens). Each micro-batch pads to its own longest sequence, so this split wastes the least
    compute on padding; the step's gradient is the same sum whichever way it is split."""
    order = sorted(indices, key=length)
    return [order[i : i + size] for i in range(0, len(order), size)]


def completion_nll_sum(model, batch: dict) -> tuple[torch.Tensor, int]:
    """Summed next-token NLL over labelled positions and their count.

    Returning the sum (not the mean) lets callers normalize by the token count of the whole
    accumulated batch, so micro-batches with more tokens weigh more, as they should.
    """
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    mask = targets != IGNORE
    logits = logits[:, :-1][mask]  # only labelled positions reach the softmax
    nll = torch.nn.functional.cross_entropy(logits.float(), targets[mask], reduction="sum")
    return nll, int(mask.sum())


def _packed(model, prompts: list[list[int]], completions: list[list[int]], pad_id: int):
    """Left-padded prompts then right-padded completions, so every completion starts at the same
    column; position ids come from the attention mask, so padding changes nothing."""
    width_p = max(map(len, prompts))
    longest = max(len(p) + len(c) for p, c in zip(prompts, completions, strict=True))
    context = model.config.max_position_embeddings
    if longest > context:  # e.g. a teacher prompt holding a long solution, plus the student's completion
        raise ValueError(
            f"a prompt + completion of {longest} tokens exceeds the model's context of {context} "
            "positions: lower max_new_tokens, or use shorter contexts (solutions) in the teacher prompt"
        )
    input_ids = torch.full((len(prompts), width_p + max(map(len, completions))), pad_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    for row, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        input_ids[row, width_p - len(p) : width_p + len(c)] = torch.tensor(p + c)
        attention[row, width_p - len(p) : width_p + len(c)] = 1
    return input_ids, attention, (attention.cumsum(-1) - 1).clamp(min=0), width_p


def output_head(model):
    """The module that maps final hidden states to logits (the LM head); refused for models whose
    forward changes logits after it (soft-capping), which the chunked losses would miss."""
    config = model.config
    if getattr(config, "final_logit_softcapping", None) or getattr(
        getattr(config, "text_config", None), "final_logit_softcapping", None
    ):
        raise ValueError(f"{config.model_type}: logit soft-capping after the LM head is not supported by the losses")
    return model.get_output_embeddings()


def completion_hidden(model, prompts: list[list[int]], completions: list[list[int]], pad_id: int):
    """Final hidden states at the positions that predict each completion token, without computing
    any logits: the losses apply the LM head chunk by chunk (memory bounded by the chunk, not the
    completion length). Returns (hidden [B, Lc, H], mask [B, Lc], ids [B, Lc])."""
    input_ids, attention, position_ids, width_p = _packed(model, prompts, completions, pad_id)
    width_c = input_ids.shape[1] - width_p
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    captured = []
    hook = base.get_decoder().register_forward_hook(lambda module, args, out: captured.append(out.last_hidden_state))
    device = next(model.parameters()).device
    try:
        # The model's own forward (sharded weights are gathered by it), asking for no logits at all.
        model(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            position_ids=position_ids.to(device),
            logits_to_keep=torch.zeros(0, dtype=torch.long, device=device),
        )
    finally:
        hook.remove()
    hidden = captured[-1][:, width_p - 1 : width_p - 1 + width_c]
    mask = attention[:, width_p:].bool().to(device)
    return hidden, mask, input_ids[:, width_p:].to(device)


def completion_logits(model, prompts: list[list[int]], completions: list[list[int]], pad_id: int):
    """Logits predicting each completion token, for completion positions only: [B, Lc, V] at once
    (small models and tests; training goes through the chunked losses). Returns (logits, mask, ids)."""
    hidden, mask, ids = completion_hidden(model, prompts, completions, pad_id)
    return output_head(model)(hidden), mask, ids


def log_softmax(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Log-probabilities in float32 at least (bf16 logits would lose the tail; float64 stays float64)."""
    return torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)) / temperature, -1)


def sampled_logp(logits: torch.Tensor, ids: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Log-probability of each given token id [B, L] under logits / temperature [B, L, V]."""
    return log_softmax(logits, temperature).gather(-1, ids[..., None])[..., 0]
