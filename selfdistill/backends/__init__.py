"""One generation interface; backends differ only in how they sample.

Training and grading code sees `Completion`s and never knows which backend made them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sampling:
    n: int
    temperature: float
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    max_new_tokens: int = 256
    seed: int = 0

    @classmethod
    def from_config(cls, cfg: dict, seed: int, model_cfg: dict | None = None) -> "Sampling":
        """Sampling of an eval set / the teacher, with the model's own `sampling` overrides on top
        (e.g. Qwen3 with thinking off samples at T = 0.7, top_p = 0.8)."""
        cfg = {**cfg, **(model_cfg or {}).get("sampling", {})}
        return cls(
            n=cfg["n_samples"],
            temperature=cfg["temperature"],
            top_p=cfg["top_p"],
            top_k=cfg.get("top_k", 0),
            max_new_tokens=cfg["max_new_tokens"],
            seed=seed,
        )


@dataclass(frozen=True)
class Completion:
    prompt_index: int
    sample: int
    token_ids: list[int]  # generated ids, EOS included when the model stopped
    text: str  # decoded without the EOS
    finish_reason: str  # "stop" or "length"


def check_fits(prompts: list[list[int]], max_new_tokens: int, context: int, context_name: str) -> None:
    """Refuse, before generating anything, a prompt whose generation budget would run past the
    model's context (transformers would go on silently past its trained positions)."""
    longest = max(range(len(prompts)), key=lambda i: len(prompts[i]), default=None)
    if longest is not None and len(prompts[longest]) + max_new_tokens > context:
        raise ValueError(
            f"prompt {longest} has {len(prompts[longest])} tokens; with max_new_tokens = {max_new_tokens} it needs "
            f"{len(prompts[longest]) + max_new_tokens} positions, more than the model's context of {context} "
            f"({context_name}): lower this rule's max_new_tokens, drop or shorten the problem, or use a model "
            "with a longer context"
        )


def make_backend(model_cfg: dict, model_path: str, adapter_path: str | None = None, batch_size: int = 256,
                 seed: int = 0):
    """The backend a model's config names: `hf` (transformers) or `vllm` (offline engine)."""
    kind = model_cfg.get("backend", "hf")
    if kind == "hf":
        from selfdistill.backends.hf import HFBackend

        return HFBackend.load(model_path, adapter_path, dtype=model_cfg.get("dtype", "float32"), batch_size=batch_size)
    if kind == "vllm":
        from selfdistill.backends.vllm import VLLMBackend

        return VLLMBackend(model_path, adapter_path, dtype=model_cfg.get("dtype", "float32"),
                           lora=model_cfg.get("lora", "request"), engine=model_cfg.get("vllm", {}), seed=seed)
    raise ValueError(f"unknown backend {kind!r} for model {model_path}: use 'hf' or 'vllm'")
