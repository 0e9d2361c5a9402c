"""`epistemic: forced` in vLLM: a response may not end its thinking (`</think>` or EOS) before it has
sampled an epistemic word's id (s1's budget forcing, applied once), as `NoEndBeforeEpistemic` does
for transformers. A vLLM (v1) logits processor, passed to the engine at start-up and switched on per
request by its `extra_args`; only the newest token of each request is looked at per step, so the
cost does not grow with the response (38k-token budgets). Imports vLLM: loaded only by the vLLM
backend."""

from __future__ import annotations

import torch
from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

KEY = "selfdistill_forced"  # extra_args: {KEY: {"ends": [...], "epistemic": [...]}}


def request_args(ends, epistemic_ids) -> dict:
    """A request's extra_args that switch forcing on, with its tokenizer's ids."""
    return {KEY: {"ends": sorted(ends), "epistemic": sorted(epistemic_ids)}}


class NoEndBeforeEpistemic(AdapterLogitsProcessor):
    def is_argmax_invariant(self) -> bool:
        return False  # it changes which token greedy decoding takes

    def new_req_logits_processor(self, params):
        spec = (params.extra_args or {}).get(KEY)
        if not spec:
            return None
        ends, epistemic = spec["ends"], frozenset(spec["epistemic"])
        state = {"seen": 0, "said": False}

        def hold_back_the_end(output_ids: list[int], logits: torch.Tensor) -> torch.Tensor:
            if not state["said"]:
                state["said"] = any(t in epistemic for t in output_ids[state["seen"] :])
                state["seen"] = len(output_ids)
            if not state["said"]:
                logits[ends] = -torch.inf
            return logits

        return hold_back_the_end
