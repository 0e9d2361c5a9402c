"""Epistemic verbalization: the paper's word list, its counts, and the tokenizer's id set E."""

from __future__ import annotations

import re

# The paper's ten words, in its order.
EPISTEMIC_WORDS = ("wait", "hmm", "perhaps", "maybe", "actually", "alternatively", "seems", "might", "likely", "check")

_WORD_BOUNDARY = re.compile(r"\b(?:" + "|".join(EPISTEMIC_WORDS) + r")\b", re.IGNORECASE)


def substring_count(text: str) -> int:
    """The paper's count: case-insensitive substring occurrences summed over the words.

    Deliberately loose ("checked", "unlikely" and "await" count) so numbers compare with the paper's.
    """
    lowered = text.lower()
    return sum(lowered.count(word) for word in EPISTEMIC_WORDS)


def word_count(text: str) -> int:
    """Whole-word occurrences only ("check" counts, "checked" does not)."""
    return len(_WORD_BOUNDARY.findall(text))


def density_per_1k(count: int, n_tokens: int) -> float:
    """Paper-definition count per 1,000 response tokens (0 for an empty response)."""
    return 1000.0 * count / n_tokens if n_tokens else 0.0


def epistemic_token_ids(tokenizer) -> list[int]:
    """Vocabulary ids whose decoded, stripped, lower-cased text starts with one of the words (the set E).

    This catches "Wait", " wait", "Hmm," and "checking"; a word split into several sub-word
    tokens is not caught, which is why the toy tokenizer keeps the ten words whole.
    """
    return [
        token_id
        for token_id in range(len(tokenizer))
        if tokenizer.decode([token_id]).strip().lower().startswith(EPISTEMIC_WORDS)
    ]
