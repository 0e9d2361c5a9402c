"""Build and pretrain the toy model: a ~1M-parameter Qwen2 with a locally trained BPE tokenizer."""

from __future__ import annotations

import logging
import math
import random
import time

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from selfdistill import prompts
from selfdistill.data import toy
from selfdistill.epistemic import EPISTEMIC_WORDS
from selfdistill.settings.toy import ToyArch, ToyPretrainConfig, ToyTraces
from selfdistill.train.batching import IGNORE, build_batch, completion_nll_sum, micro_batches

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer(texts, vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE with single-digit tokens (so arithmetic is digit by digit)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None, unk_token=None
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(tokenizer, arch: ToyArch) -> Qwen2ForCausalLM:
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=arch.hidden_size,
        intermediate_size=arch.intermediate_size,
        num_hidden_layers=arch.num_layers,
        num_attention_heads=arch.num_heads,
        num_key_value_heads=arch.num_kv_heads,
        max_position_embeddings=arch.max_positions,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    return Qwen2ForCausalLM(config)


def corpus_example(rng: random.Random, terms, templates: prompts.Prompts, mix: dict, traces: ToyTraces):
    """(user turn, response segments) for one pretraining example of a randomly chosen kind; each
    segment is (text, trained): untrained text (a wrong guess) gets no loss."""
    problem = toy.problem_text(terms)
    solution = toy.solution_text(terms)
    kind = rng.choices(list(mix), weights=list(mix.values()))[0]
    guess_world = traces.world != "chain"
    if kind == "none" and guess_world:
        segments = toy.guess_trace(
            terms, rng, traces.world, traces.p_check, traces.p_wrong_guess, traces.guess_max_terms, traces.null_check
        )
    elif kind == "none":
        segments = [(toy.unguided_trace(terms, rng, traces.p_error, traces.p_verify), True)]
    elif guess_world:  # with any context the trace copies it, checking in a share p_check_guided
        segments = toy.guided_guess_trace(terms, rng, traces)
    else:
        segments = [(solution, True)]
    user = prompts.teacher_user_turn(templates, kind, problem, answer=str(sum(terms)), solution=solution)
    return user, segments


def _response_ids(tokenizer, segments) -> tuple[list[int], list[bool]]:
    """Token ids of the segments (then EOS) and which are trained. Segments end at pre-token
    boundaries (digits are single tokens), so the ids equal those of the joined text."""
    ids, trained = [], []
    for text, keep in segments:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        trained += [keep] * len(piece)
    return ids + [tokenizer.eos_token_id], trained + [True]


def pretraining_loss(model, examples, pad_id: int, micro_batch_size: int = 16) -> tuple[float, int]:
    """Back-propagates the mean next-token NLL over the trained response tokens of `examples`
    (prompt ids, response ids, which are trained) and returns (NLL sum, token count). Micro-batches
    of similar length: padding a whole batch to its longest example takes 40-50% more time (bench/suite.py)."""
    batches = []
    for micro in micro_batches(
        range(len(examples)), micro_batch_size, lambda i: len(examples[i][0]) + len(examples[i][1])
    ):
        batch = build_batch([examples[i][0] for i in micro], [examples[i][1] for i in micro], pad_id)
        for row, i in enumerate(micro):
            prompt, _, trained = examples[i]
            untrained = [len(prompt) + j for j, keep in enumerate(trained) if not keep]
            batch["labels"][row, untrained] = IGNORE
        batches.append(batch)
    n_tokens = sum(int((batch["labels"][:, 1:] != IGNORE).sum()) for batch in batches)
    nll_sum = 0.0
    for batch in batches:
        nll, _ = completion_nll_sum(model, batch)
        (nll / n_tokens).backward()
        nll_sum += nll.item()
    return nll_sum, n_tokens


def pretrain(spec: ToyPretrainConfig, templates: prompts.Prompts, held_out: set[str], seed: int):
    """Train tokenizer and model from scratch on generated traces; returns (model, tokenizer, log rows)."""
    rng = random.Random(seed)
    torch.manual_seed(seed)

    def draw_terms():
        while True:
            terms = toy.sample_terms(rng, spec.terms, spec.max_operand)
            if toy.problem_text(terms) not in held_out:
                return terms

    # The tokenizer sees the epistemic words in every casing used, so each stays one token.
    sample = []
    for _ in range(2000):
        user, segments = corpus_example(rng, draw_terms(), templates, spec.mix, spec.traces)
        sample.append(user + " " + "".join(text for text, _ in segments))
    sample += [" " + " ".join(EPISTEMIC_WORDS), " ".join(w.capitalize() for w in EPISTEMIC_WORDS)] * 50
    tokenizer = build_tokenizer(sample, spec.vocab_size)
    model = build_model(tokenizer, spec.arch)
    log.info("toy model: %d parameters, vocabulary %d", model.num_parameters(), len(tokenizer))

    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.01, betas=(0.9, 0.98))
    steps, warmup = spec.steps, max(1, spec.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))
    )
    rows, start = [], time.time()
    model.train()
    for step in range(steps):
        examples = []
        for _ in range(spec.batch_size):
            user, segments = corpus_example(rng, draw_terms(), templates, spec.mix, spec.traces)
            examples.append((prompts.prompt_ids(tokenizer, user), *_response_ids(tokenizer, segments)))
        opt.zero_grad(set_to_none=True)
        nll_sum, n_tokens = pretraining_loss(model, examples, tokenizer.pad_token_id, spec.micro_batch_size)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        loss = nll_sum / n_tokens
        rows.append({"step": step, "loss": loss, "tokens": n_tokens, "lr": sched.get_last_lr()[0]})
        if step % 100 == 0 or step == steps - 1:
            log.info("pretrain step %d/%d loss %.4f (%.0fs)", step, steps, loss, time.time() - start)
    model.eval()
    return model, tokenizer, rows
