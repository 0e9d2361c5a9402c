"""Generation with transformers' `generate` (any HF causal LM, optionally with a LoRA adapter)."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from tqdm import tqdm
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from selfdistill import precision
from selfdistill.backends import Completion, Sampling, check_fits, end_of_thinking_ids, epistemic_ids
from selfdistill.models import load_model, load_tokenizer


class NoEndBeforeEpistemic(LogitsProcessor):
    """`forced`: a row may not end its thinking (the `ends` ids) until its generated part, from
    column `start`, holds an epistemic id; after that it samples freely."""

    def __init__(self, start: int, epistemic_ids, ends):
        self.start, self.epistemic, self.ends = start, torch.tensor(epistemic_ids), list(ends)
        self.said = None  # per row: an epistemic id seen so far (only the newest token is checked per
        # step, so the cost does not grow with the response; sampling keeps rows in place)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.said is None:
            self.said = torch.zeros((input_ids.shape[0], 1), dtype=torch.bool, device=input_ids.device)
        if input_ids.shape[1] > self.start:
            self.said |= torch.isin(input_ids[:, -1:], self.epistemic.to(input_ids.device))
        scores[:, self.ends] = torch.where(self.said, scores[:, self.ends], -torch.inf)
        return scores


class SeededSampler(LogitsProcessor):
    """Sampling as `generate` does it (temperature, top-k, top-p, then a draw from the softmax), but
    each row drawn with its own generator, seeded per prompt and sample (`Sampling.prompt_seed`):
    a row's tokens then depend on its seed and its own logits only, not on which batch, shard or
    training rank it was generated in. Leaves only the drawn token possible, so `generate` runs
    greedy over it."""

    def __init__(self, seeds: list[int], sampling: Sampling, device):
        self.generators = [torch.Generator(device).manual_seed(seed) for seed in seeds]
        warpers = [TemperatureLogitsWarper(sampling.temperature)]
        if sampling.top_k:
            warpers.append(TopKLogitsWarper(sampling.top_k))
        if sampling.top_p < 1.0:
            warpers.append(TopPLogitsWarper(sampling.top_p))
        self.warpers = LogitsProcessorList(warpers)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        probs = torch.softmax(self.warpers(input_ids, scores).float(), dim=-1)
        drawn = torch.cat([torch.multinomial(p, 1, generator=g) for p, g in zip(probs, self.generators, strict=True)])
        return torch.full_like(scores, -torch.inf).scatter_(1, drawn[:, None], 0.0)


class HFBackend:
    """Samples from an in-memory model (e.g. the student being trained, adapter live).

    ranks: the training ranks' collectives (`selfdistill.distributed`) when the model is sharded
    across processes; passed in by training, so evaluation jobs never load training code.
    """

    def __init__(self, model, tokenizer, batch_size: int = 256, ranks=None):
        self.model, self.tokenizer = model, tokenizer
        self.batch_size = batch_size  # sequences per generate() call
        self.ranks = ranks

    @classmethod
    def load(cls, model_path: str, adapter_path: str | None = None, dtype: str = "float32", batch_size: int = 256):
        """A model from disk or hub; a LoRA adapter is merged, since generation is all it will do."""
        model = load_model(model_path, adapter_path, dtype=dtype, merge=True).eval()
        return cls(model, load_tokenizer(model_path), batch_size)

    @property
    def device(self):
        return self.model.device

    def generate(
        self, prompts: list[list[int]], sampling: Sampling, desc: str = "generate", indices: list[int] | None = None
    ) -> list[Completion]:
        tok = self.tokenizer
        eos, pad = tok.eos_token_id, tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        check_fits(prompts, sampling, self.model.config.max_position_embeddings, "max_position_embeddings")
        indices = list(range(len(prompts))) if indices is None else indices
        per_call = max(1, self.batch_size // sampling.n)
        greedy = sampling.temperature == 0
        was_training = self.model.training
        self.model.eval()
        # A sharded model (several training ranks) samples with its weights gathered once, whole on
        # every rank: each rank then generates its own prompts, no collective per token.
        sharded = self.ranks is not None and self.ranks.world_size() > 1
        out = []
        with torch.no_grad(), self.ranks.gathered(self.model) if sharded else nullcontext():
            for start in tqdm(range(0, len(prompts), per_call), desc=desc, unit="batch", mininterval=5):
                chunk = prompts[start : start + per_call]
                width = max(map(len, chunk))
                # Left padding, so every row's continuation starts at the same column; one row per
                # sample (prompt-major), each drawn with its own seed.
                input_ids = torch.full((len(chunk) * sampling.n, width), pad, dtype=torch.long)
                attention = torch.zeros_like(input_ids)
                for row, ids in enumerate(ids for ids in chunk for _ in range(sampling.n)):
                    input_ids[row, width - len(ids) :] = torch.tensor(ids)
                    attention[row, width - len(ids) :] = 1
                processors = [NoEndBeforeEpistemic(width, epistemic_ids(tok), end_of_thinking_ids(tok))]
                processors = processors if sampling.epistemic == "forced" else []
                if not greedy:
                    seeds = [
                        sampling.prompt_seed(indices[start + i]) + k
                        for i in range(len(chunk))
                        for k in range(sampling.n)
                    ]
                    processors.append(SeededSampler(seeds, sampling, self.device))
                with precision.autocast(self.model):
                    generated = self.model.generate(
                        input_ids=input_ids.to(self.device),
                        attention_mask=attention.to(self.device),
                        do_sample=False,  # the SeededSampler draws; greedy picks its draw
                        max_new_tokens=sampling.max_new_tokens,
                        eos_token_id=eos,
                        pad_token_id=pad,
                        suppress_tokens=list(epistemic_ids(tok)) if sampling.epistemic == "banned" else None,
                        logits_processor=LogitsProcessorList(processors),
                    )[:, width:].tolist()
                for k, ids in enumerate(generated):
                    prompt_index, sample = start + k // sampling.n, k % sampling.n
                    # A row's tokens do not depend on later ones: cutting at its budget is stopping there.
                    budget = sampling.budget(len(prompts[prompt_index]))
                    ids = ids[: ids.index(eos) + 1] if eos in ids[:budget] else ids[:budget]
                    if eos in ids:
                        ids, reason = ids[: ids.index(eos) + 1], "stop"
                        text_ids = ids[:-1]
                    else:
                        reason, text_ids = "length", ids
                    text = tok.decode(text_ids, skip_special_tokens=False)
                    out.append(Completion(prompt_index, sample, ids, text, reason))
        self.model.train(was_training)
        return out

    def sync(self, student) -> None:
        """As a rollout engine: nothing to do, it samples from the live student."""

    def close(self):
        del self.model
