"""Section `toy_pretrain`: the toy model organism's architecture and pretraining corpus, and a toy
model's own override of it (`models.<name>.toy_pretrain`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from selfdistill.settings.core import Constraint, NonNegative, Positive, PositiveInt, Probability, optional
from selfdistill.settings.data import TermsRange

World = Literal["guess_check", "null", "chain"]


@dataclass(frozen=True, kw_only=True)
class ToyArch:
    """`toy_pretrain.arch`: a Qwen2."""

    hidden_size: Annotated[int, Constraint(minimum=8)]
    """the model's width"""
    intermediate_size: Annotated[int, Constraint(minimum=8)]
    """the MLP's width"""
    num_layers: PositiveInt
    """decoder layers"""
    num_heads: PositiveInt
    """attention heads (they divide hidden_size)"""
    num_kv_heads: PositiveInt
    """key/value heads (they divide num_heads)"""
    max_positions: Annotated[int, Constraint(minimum=64)]
    """the context: prompt + generated tokens"""


@dataclass(frozen=True, kw_only=True)
class ToyTraces:
    """`toy_pretrain.traces`: how unguided pretraining traces think (selfdistill.data.toy)."""

    world: World = "guess_check"
    """guess_check: guess, then check by the chain; null: guess, then re-guess (checking cannot help); chain:
    the step-by-step chain with corrected slips (write "null" in quotes: a bare null deletes the key)"""
    p_check: Probability = 0.6
    """guess worlds: share of unguided traces that check their guess (the dose of checking)"""
    p_check_guided: Probability = 0.0
    """guess worlds: share of traces written with a solution or answer in context that check too, as unguided
    ones do (0: the teacher never checks; above 0: it rarely starts a check but is competent inside one)"""
    null_check: Literal["guess", "chain"] = "guess"
    """null world: its check is a second one-shot guess (guess), or guess_check's chain and verdict with the answer
    left at the guess (chain: the same check, token for token, whose result is ignored)"""
    p_wrong_guess: Annotated[float, Constraint(minimum=0, maximum=0.9)] = 0.4
    """guess worlds: share of shown guesses that are wrong (they get no loss)"""
    guess_max_terms: PositiveInt = 4
    """guess worlds: shown guesses of more terms are always wrong (untrained): a one-shot sum gets harder with
    length"""
    p_error: Probability = 0.2
    """chain world: chance an unguided step slips (and is corrected aloud)"""
    p_verify: Probability = 0.15
    """chain world: chance a right step is re-checked aloud"""


@dataclass(frozen=True, kw_only=True)
class ToyPretrainConfig:
    """`toy_pretrain`: the toy model (the embedded default's organism), built and pretrained by the
    workflow for every model with `source: toy`."""

    seed: int
    """the pretraining seed (corpus, initialization, order); a model may override it"""
    terms: TermsRange
    """[low, high] sum lengths seen in pretraining"""
    max_operand: Annotated[int, Constraint(minimum=2, maximum=99)] | None = optional()
    """largest operand in pretraining; default: the training dataset's toy.max_operand, or 9 when it is not a
    toy dataset"""
    vocab_size: Annotated[int, Constraint(minimum=300)]
    """the tokenizer's size at most"""
    arch: ToyArch
    steps: PositiveInt
    """pretraining optimizer steps"""
    batch_size: PositiveInt
    """traces per step (in micro-batches of similar length)"""
    lr: Positive
    """AdamW peak learning rate (warm-up, then cosine decay)"""
    micro_batch_size: PositiveInt = 16
    """traces per forward and backward pass: sets the summation order of a step's gradient, so models of one
    seed and another split differ as models of one config on two machines do"""
    mix: Annotated[
        dict[Literal["none", "answer", "solution", "solution_nothink"], NonNegative], Constraint(minProperties=1)
    ]
    """share of pretraining traces per teacher context ("none": unguided)"""
    traces: ToyTraces

    @staticmethod
    def check(config: dict, error) -> None:
        toy_pretrain = config["toy_pretrain"]
        arch = toy_pretrain["arch"]
        if arch["num_heads"] % arch["num_kv_heads"]:
            error(
                "toy_pretrain.arch.num_kv_heads",
                arch["num_kv_heads"],
                f"does not divide num_heads = {arch['num_heads']}",
                "pick a divisor of num_heads",
            )
        if arch["hidden_size"] % arch["num_heads"]:
            error(
                "toy_pretrain.arch.num_heads",
                arch["num_heads"],
                f"does not divide hidden_size = {arch['hidden_size']}",
                "pick a divisor of hidden_size",
            )
        if toy_pretrain["terms"][0] > toy_pretrain["terms"][1]:
            error("toy_pretrain.terms", toy_pretrain["terms"], "is an empty range", "use [low, high] with low <= high")


@dataclass(frozen=True, kw_only=True)
class ToyPretrainOverride:
    """`models.<name>.toy_pretrain`: a toy model's own pretraining, over `toy_pretrain` (another world,
    pretraining seed, micro-batch split or dose of checking)."""

    seed: int
    """this model's pretraining seed"""
    micro_batch_size: PositiveInt
    """this model's micro-batch split of a pretraining step"""
    traces: ToyTraces
    """this model's keys of toy_pretrain.traces (world, p_check, ...)"""
