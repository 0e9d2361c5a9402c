"""Prompt + completion batches with a completion-only loss mask."""

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


def completion_logits(model, prompts: list[list[int]], completions: list[list[int]], pad_id: int):
    """Logits predicting each completion token, materialized for completion positions only.

    Prompts are left-padded and completions right-padded, so every completion starts at the same
    column and `logits_to_keep` can skip the prompt; position ids come from the attention mask,
    so padding changes nothing. Returns (logits [B, Lc, V], mask [B, Lc], ids [B, Lc]).
    """
    width_p, width_c = max(map(len, prompts)), max(map(len, completions))
    longest = max(len(p) + len(c) for p, c in zip(prompts, completions, strict=True))
    context = model.config.max_position_embeddings
    if longest > context:  # e.g. a teacher prompt holding a long solution, plus the student's completion
        raise ValueError(
            f"a prompt + completion of {longest} tokens exceeds the model's context of {context} "
            "positions: lower max_new_tokens, or use shorter contexts (solutions) in the teacher prompt"
        )
    n = len(prompts)
    input_ids = torch.full((n, width_p + width_c), pad_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    for row, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        input_ids[row, width_p - len(p) : width_p + len(c)] = torch.tensor(p + c)
        attention[row, width_p - len(p) : width_p + len(c)] = 1
    position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
    device = next(model.parameters()).device
    logits = model(
        input_ids=input_ids.to(device),
        attention_mask=attention.to(device),
        position_ids=position_ids.to(device),
        logits_to_keep=width_c + 1,
    ).logits[:, :width_c]
    mask = attention[:, width_p:].bool().to(device)
    return logits, mask, input_ids[:, width_p:].to(device)
