"""One generation interface; backends differ only in how they sample.

Training and grading code sees `Completion`s and never knows which backend made them.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from typing import Protocol

from selfdistill.settings.models import ModelConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sampling:
    n: int
    temperature: float
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    max_new_tokens: int = 256
    seed: int = 0
    # Prompt + response cap per sample (verl's rollout max_model_len), on top of max_new_tokens; 0: none.
    max_total_tokens: int = 0
    # free; banned: never sample the epistemic words' ids (the set E), as NoWait does at inference;
    # forced: no end of thinking (</think> or EOS) before the response has an id of E (s1's budget
    # forcing, applied once): what verbalized checking is worth to a model, on any model.
    epistemic: str = "free"

    def budget(self, prompt_length: int) -> int:
        """New tokens a prompt of this length may sample: max_new_tokens, within max_total_tokens."""
        if self.max_total_tokens:
            return max(1, min(self.max_new_tokens, self.max_total_tokens - prompt_length))
        return self.max_new_tokens

    def prompt_seed(self, index: int) -> int:
        """The seed of prompt `index`'s samples, sample k drawn with seed + k (vLLM's convention for
        n > 1): a hash of the call's seed and the prompt's index in the whole call, so a sample does not
        depend on the batch, shard or training rank it was drawn in, and no two prompts share a stream."""
        digest = hashlib.blake2b(f"{self.seed}:{index}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") >> 34  # below 2^30: room for + k in any seed type

    @classmethod
    def of(cls, section, seed: int, model: ModelConfig, name: str) -> Sampling:
        """The sampling of a config section with sampling keys (an eval set, the teacher, Table 1),
        with the model's own `sampling` on top (e.g. Qwen3 with thinking off samples at T = 0.7):
        the model's wins, and each value it overrides is logged."""
        values = {key: getattr(section, key) for key in ("temperature", "top_p", "top_k")}
        for key, value in model.sampling.items():
            if values[key] != value:
                log.info(
                    "sampling: %s = %s from the model's `sampling` overrides %s.%s = %s",
                    key,
                    value,
                    name,
                    key,
                    values[key],
                )
            values[key] = value
        epistemic = getattr(section, "epistemic", "free")
        return cls(n=section.n_samples, max_new_tokens=section.max_new_tokens, seed=seed, epistemic=epistemic, **values)


@functools.lru_cache(maxsize=4)
def epistemic_ids(tokenizer) -> tuple[int, ...]:
    """The set E of a tokenizer, computed once per tokenizer (a pass over the vocabulary)."""
    from selfdistill.epistemic import epistemic_token_ids

    return tuple(epistemic_token_ids(tokenizer))


def end_of_thinking_ids(tokenizer) -> tuple[int, ...]:
    """What `forced` holds back until an epistemic word: EOS, and </think> where it is one token."""
    think = tokenizer.convert_tokens_to_ids("</think>")
    return tuple(i for i in {tokenizer.eos_token_id, think} if i is not None and i != tokenizer.unk_token_id)


@dataclass(frozen=True)
class Completion:
    prompt_index: int
    sample: int
    token_ids: list[int]  # generated ids, EOS included when the model stopped
    text: str  # decoded without the EOS
    finish_reason: str  # "stop" or "length"
    logprobs: list[float] | None = None  # the engine's log-prob of each sampled token, when it reports them


def check_fits(prompts: list[list[int]], sampling: Sampling, context: int, context_name: str) -> None:
    """Refuse, before generating anything, a prompt whose generation budget would run past the
    model's context (transformers would go on silently past its trained positions)."""
    need = [len(p) + sampling.budget(len(p)) for p in prompts]
    worst = max(range(len(prompts)), key=need.__getitem__, default=None)
    if worst is not None and need[worst] > context:
        raise ValueError(
            f"prompt {worst} has {len(prompts[worst])} tokens; with a budget of {sampling.budget(len(prompts[worst]))} "
            f"new tokens (max_new_tokens = {sampling.max_new_tokens}) it needs {need[worst]} positions, more than the "
            f"model's context of {context} ({context_name}): lower this rule's max_new_tokens, drop or shorten the "
            "problem, or use a model with a longer context"
        )


class Backend(Protocol):
    """What generates: a model behind `generate`; `close` frees its memory (a GPU engine)."""

    tokenizer: object

    def generate(
        self, prompts: list[list[int]], sampling: Sampling, desc: str = "generate", indices: list[int] | None = None
    ) -> list[Completion]:
        """n completions per prompt; `indices`: each prompt's index in the whole call (the key of its
        seed, `Sampling.prompt_seed`; default its position). Completions carry the position."""

    def close(self) -> None: ...


def make_backend(
    model: ModelConfig,
    model_path: str,
    adapter_path: str | None = None,
    batch_size: int = 256,
    seed: int = 0,
    max_logprobs: int | None = None,
) -> Backend:
    """The backend a model's config names: `hf` (transformers) or `vllm` (offline engine).
    max_logprobs: the most log-probs per position a vLLM scorer returns (its default is 20)."""
    if model.backend == "hf":
        from selfdistill.backends.hf import HFBackend

        return HFBackend.load(model_path, adapter_path, dtype=model.dtype, batch_size=batch_size)
    if model.backend == "vllm":
        from selfdistill.backends.vllm import VLLMBackend

        engine = {**model.vllm, **({"max_logprobs": max_logprobs} if max_logprobs else {})}
        return VLLMBackend(model_path, adapter_path, dtype=model.dtype, lora=model.lora, engine=engine, seed=seed)
    raise ValueError(f"unknown backend {model.backend!r} for model {model_path}: use 'hf' or 'vllm'")


def make_rollout_engine(
    engine,
    model: ModelConfig,
    student,
    tokenizer,
    model_path: str,
    batch_size: int,
    seed: int,
    ranks=None,
    max_logprobs: int | None = None,
):
    """What samples a training job's rollouts (`rollouts.backend`): the student itself through
    transformers (`hf`), or a vLLM engine kept for the job and told the new weights every step.
    ranks: the training ranks' collectives when the student is sharded (transformers only);
    max_logprobs: the engine also scores the frozen teacher's top-k (its base weights)."""
    if engine.backend == "hf":
        from selfdistill.backends.hf import HFBackend

        return HFBackend(student, tokenizer, batch_size, ranks=ranks)
    if engine.backend == "vllm":
        from selfdistill.backends.vllm import VLLMRollouts

        lora_rank = student.peft_config["default"].r if hasattr(student, "peft_config") else None
        return VLLMRollouts(model_path, model, engine, seed, lora_rank, max_logprobs)
    raise ValueError(f"unknown rollouts.backend {engine.backend!r}: use 'hf' or 'vllm'")
