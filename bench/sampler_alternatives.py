"""Where the sampling time of the TRL-comparison step goes: could a leaner sampler buy the 1.5x?

On the on-policy benchmark's batch (8 prompts x 8 rollouts, <= 96 new tokens, T = 1, the toy model
with a LoRA r = 8 adapter; bench/onpolicy_vs_trl.py), times (median of 5 after a warm-up):
  - transformers' `generate` as the HF backend calls it (dynamic KV cache);
  - the same with a static (preallocated) KV cache;
  - a minimal sampling loop: one prefill, then one forward per token on a dynamic cache, no
    logits processors or stopping criteria;
  - `generate` on the base model without the adapter (what the LoRA layers cost).

    python bench/sampler_alternatives.py [--model results/models/toy/hf]

Writes bench/results/sampler_alternatives.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml
from transformers import DynamicCache

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selfdistill import prompts  # noqa: E402
from selfdistill.models import load_model, load_tokenizer  # noqa: E402
from selfdistill.settings.training import LoraConfig  # noqa: E402
from selfdistill.train.model import add_lora  # noqa: E402

P, N, MAX_NEW = 8, 8, 96


def left_padded(prompt_ids, pad):
    width = max(map(len, prompt_ids))
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompt_ids])
    return ids, (torch.arange(width)[None] >= torch.tensor([width - len(p) for p in prompt_ids])[:, None]).long()


@torch.no_grad()
def minimal_loop(model, ids, attention, eos):
    """Prefill, then sample one token per forward until every row has ended."""
    ids, attention = ids.repeat_interleave(N, 0), attention.repeat_interleave(N, 0)
    position = (attention.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache()
    logits = model(
        input_ids=ids, attention_mask=attention, position_ids=position, past_key_values=cache, logits_to_keep=1
    ).logits[:, -1]
    done = torch.zeros(len(ids), dtype=torch.bool)
    last = position[:, -1]
    for _ in range(MAX_NEW):
        token = torch.multinomial(torch.softmax(logits.float(), -1), 1)[:, 0]
        done |= token == eos
        if done.all():
            break
        attention = torch.cat([attention, torch.ones_like(attention[:, :1])], 1)
        last = last + 1
        logits = model(
            input_ids=token[:, None], attention_mask=attention, position_ids=last[:, None], past_key_values=cache
        ).logits[:, -1]


def median_seconds(fn, repeats=5):
    fn()
    times = []
    for seed in range(repeats):
        torch.manual_seed(seed)
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(ROOT / "results/models/toy/hf"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    tok = load_tokenizer(args.model)
    base = load_model(args.model).eval()
    lora = cfg["lora"]
    student = add_lora(
        load_model(args.model),
        LoraConfig(r=8, alpha=lora["alpha"], dropout=lora["dropout"], target_modules=tuple(lora["target_modules"])),
    ).eval()
    questions = [f"Compute {i}+{i % 7 + 2}+4+5." for i in range(P)]
    ids, attention = left_padded(
        [prompts.prompt_ids(tok, prompts.student_user_turn(cfg["prompts"]["student"], q)) for q in questions],
        tok.pad_token_id,
    )

    def generate(model, **extra):
        with torch.no_grad():
            model.generate(
                input_ids=ids,
                attention_mask=attention,
                do_sample=True,
                temperature=1.0,
                top_p=1.0,
                top_k=0,
                max_new_tokens=MAX_NEW,
                num_return_sequences=N,
                eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id,
                **extra,
            )

    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "setting": f"{P} prompts x {N} rollouts, <= {MAX_NEW} new tokens, T = 1, toy model + LoRA r = 8",
        "seconds": {
            "generate": median_seconds(lambda: generate(student)),
            "generate_static_cache": median_seconds(lambda: generate(student, cache_implementation="static")),
            "minimal_loop": median_seconds(lambda: minimal_loop(student, ids, attention, tok.eos_token_id)),
            "generate_without_adapter": median_seconds(lambda: generate(base)),
        },
    }
    (ROOT / "bench/results/sampler_alternatives.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
