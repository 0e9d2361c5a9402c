"""Generation with transformers' `generate` (any HF causal LM, optionally with a LoRA adapter)."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from tqdm import tqdm
from transformers import LogitsProcessor, LogitsProcessorList

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

    def generate(self, prompts: list[list[int]], sampling: Sampling, desc: str = "generate") -> list[Completion]:
        tok = self.tokenizer
        eos, pad = tok.eos_token_id, tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        check_fits(
            prompts, sampling.max_new_tokens, self.model.config.max_position_embeddings, "max_position_embeddings"
        )
        per_call = max(1, self.batch_size // sampling.n)
        was_training = self.model.training
        self.model.eval()
        torch.manual_seed(sampling.seed)
        # A sharded model (several training ranks) generates on every rank in lockstep, its weights
        # gathered once per call: ranks whose rows all ended keep stepping until every rank is done.
        synced = self.ranks is not None and self.ranks.world_size() > 1
        out = []
        for start in tqdm(range(0, len(prompts), per_call), desc=desc, unit="batch", mininterval=5):
            chunk = prompts[start : start + per_call]
            width = max(map(len, chunk))
            # Left padding, so every row's continuation starts at the same column.
            input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            attention = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, ids in enumerate(chunk):
                input_ids[row, width - len(ids) :] = torch.tensor(ids)
                attention[row, width - len(ids) :] = 1
            greedy = sampling.temperature == 0
            if greedy:  # generate() refuses several sequences per prompt without sampling: repeat rows
                input_ids, attention = (
                    input_ids.repeat_interleave(sampling.n, 0),
                    attention.repeat_interleave(sampling.n, 0),
                )
            forced = NoEndBeforeEpistemic(width, epistemic_ids(tok), end_of_thinking_ids(tok))
            with torch.no_grad(), self.ranks.gathered(self.model) if synced else nullcontext():
                generated = self.model.generate(
                    input_ids=input_ids.to(self.device),
                    attention_mask=attention.to(self.device),
                    do_sample=not greedy,
                    temperature=None if greedy else sampling.temperature,
                    top_p=None if greedy else sampling.top_p,
                    top_k=None if greedy else sampling.top_k,
                    max_new_tokens=sampling.max_new_tokens,
                    num_return_sequences=1 if greedy else sampling.n,
                    eos_token_id=eos,
                    pad_token_id=pad,
                    synced_gpus=synced,
                    suppress_tokens=list(epistemic_ids(tok)) if sampling.epistemic == "banned" else None,
                    logits_processor=LogitsProcessorList([forced] if sampling.epistemic == "forced" else []),
                )[:, width:].tolist()
            for k, ids in enumerate(generated):
                prompt_index, sample = start + k // sampling.n, k % sampling.n
                if eos in ids:
                    ids, reason = ids[: ids.index(eos) + 1], "stop"
                    text_ids = ids[:-1]
                else:
                    reason, text_ids = "length", ids
                text = tok.decode(text_ids, skip_special_tokens=False)
                out.append(Completion(prompt_index, sample, ids, text, reason))
        self.model.train(was_training)
        return self.ranks.broadcast(out) if synced else out  # rank 0's samples on every rank: all train on one batch

    def sync(self, student) -> None:
        """As a rollout engine: nothing to do, it samples from the live student."""

    def close(self):
        del self.model
