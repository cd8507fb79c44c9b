"""Offline token estimates: no tokenizer files, no network.

The estimate follows the rule of thumb OpenAI documents for English (about four characters per token) and
never returns less than the number of words, which keeps short, word-heavy texts from being undercounted.
It is used to pack embedding batches under a token budget and to pace requests under a tokens-per-minute
budget, where a close, cheap estimate matters more than an exact count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from spark_aoai._core import constants as C

_CHARS_PER_TOKEN = 4
# What a chat request is charged for its answer when it sets no max_tokens, by our pacing and the emulator's
# rate limiter alike (Azure's limiter also counts a request's max_tokens before it runs).
# A content part without text (an image, a file), at an image's low-detail price: a pacing figure only.


def estimate_tokens(text: str) -> int:
    """Estimate the number of tokens in ``text`` (at least 1 for a non-empty text)."""
    if not text:
        return 0
    by_chars = (len(text) + _CHARS_PER_TOKEN - 1) // _CHARS_PER_TOKEN
    by_words = len(text.split())
    return max(1, by_chars, by_words)


def estimate_message_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """Estimate the prompt tokens of a chat request: content plus a small per-message overhead."""
    total = 3
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            total += estimate_tokens(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += estimate_tokens(part["text"])
                else:
                    total += C.ATTACHMENT_TOKENS
        total += 4
    return total
