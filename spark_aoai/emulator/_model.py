"""What the emulator answers: deterministic chat replies, embeddings and JSON that fits a schema.

Everything here is a pure function of the request, so a test can compute the answer a row should get and tell
whether each row got its own.
"""

from __future__ import annotations

import functools
import json
import re
import zlib
from typing import Any

import numpy as np

from spark_aoai.emulator._labels import topic_of
from spark_aoai.emulator._media import part_description
from spark_aoai.emulator._semantic import aggregate
from spark_aoai.emulator._structured import value_for_schema

EMBEDDING_DIMENSIONS = {
    "text-embedding-ada-002": 1536,
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
}
DEFAULT_EMBEDDING_DIMENSIONS = 1536

_WORD = re.compile(r"\w+", re.UNICODE)


def message_text(content: Any) -> str:
    """The text of a chat message's ``content`` (a string or a list of content parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p["text"]) for p in content if isinstance(p, dict) and "text" in p)
    return ""


def _last_user_message(messages: list[dict[str, Any]]) -> dict[str, Any]:
    for message in reversed(messages):
        if message.get("role") == "user":
            return message
    return messages[-1] if messages else {}


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last user message, or of the last message when none is from the user."""
    return message_text(_last_user_message(messages).get("content"))


def attachments(content: Any) -> list[str]:
    """How the answer names a message's images and files: ``[image/png 1a2b3c4d]`` (type, hash of the bytes)."""
    if not isinstance(content, list):
        return []
    found = (part_description(p) for p in content if isinstance(p, dict))
    return [d for d in found if d is not None]


def chat_reply(messages: list[dict[str, Any]]) -> str:
    """The emulator's answer to a conversation: it names the last user message, so each row's is its own.

    Images and files in that message are named after its text, by media type and a hash of their bytes.

    >>> chat_reply([{"role": "user", "content": "Hi"}])
    'Emulated answer to: Hi'
    >>> chat_reply([{"role": "user", "content": [{"type": "text", "text": "What is it?"},
    ...     {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGk="}}]}])
    'Emulated answer to: What is it? [image/png 8f434346]'
    """
    message = _last_user_message(messages)
    aggregated = aggregate(message_text(message.get("content")))  # texts to aggregate (``_semantic``)
    if aggregated is not None:
        return aggregated
    text = " ".join([message_text(message.get("content")), *attachments(message.get("content"))])
    return f"Emulated answer to: {text}"


def embedding_dimensions(model: str, dimensions: int | None) -> int:
    """The vector size the emulator returns for a deployment (named after its model) and ``dimensions``."""
    if dimensions:
        return int(dimensions)
    for name, size in EMBEDDING_DIMENSIONS.items():
        if name in model:
            return size
    return DEFAULT_EMBEDDING_DIMENSIONS


def _features(text: str) -> tuple[list[bytes], int]:
    """(the text's features, how many of them are word-like): words, the words' topics, then trigrams."""
    lowered = text.lower()
    padded = f"  {lowered}  "
    found = _WORD.findall(lowered)
    words = [f"w:{w}".encode() for w in found] + [f"t:{t}".encode() for w in found if (t := topic_of(w))]
    return words + [padded[i : i + 3].encode() for i in range(len(padded) - 2)], len(words)


PROJECTION_SEED = 20240521
_SQRT2 = np.sqrt(2.0)


@functools.lru_cache(maxsize=16)
def _rotation_signs(dimensions: int) -> np.ndarray:
    """The fixed random signs of the rotation for ``dimensions`` (seeded: the same in every process)."""
    return np.random.default_rng([PROJECTION_SEED, dimensions]).choice([-1.0, 1.0], size=dimensions)


def _rotate(matrix: np.ndarray) -> np.ndarray:
    """Each row (already multiplied by :func:`_rotation_signs`) in the orthonormal real Fourier basis.

    An orthogonal map: norms and inner products are kept, and a sparse row becomes dense. numpy's FFT computes
    each row of a 2-D transform exactly as the 1-D transform of that row (a test checks it bit for bit), so a
    text's vector does not depend on the batch it came in.
    """
    rows, n = matrix.shape
    spectrum = np.fft.rfft(matrix, axis=1, norm="ortho")
    half = (n - 1) // 2  # the complex bins that carry a real and an imaginary coordinate
    out = np.empty((rows, n), dtype=np.float32)
    out[:, 0] = spectrum[:, 0].real
    np.multiply(spectrum[:, 1 : half + 1].real, _SQRT2, out=out[:, 1 : half + 1], casting="same_kind")
    np.multiply(spectrum[:, 1 : half + 1].imag, _SQRT2, out=out[:, half + 1 : 2 * half + 1], casting="same_kind")
    if n % 2 == 0:
        out[:, n - 1] = spectrum[:, n // 2].real
    return out


def embed_texts(texts: list[str], dimensions: int) -> np.ndarray:
    """Dense unit-length float32 vectors (one row per text): hashed words and trigrams, randomly rotated.

    Each text's words and their topics (weighted 2; :func:`~spark_aoai.emulator._labels.topic_of`) and its
    character trigrams (weighted 1) are hashed, with a sign, into ``dimensions`` bins, and the bins are rotated
    by a fixed random orthogonal map (random signs, then :func:`_rotate`). A rotation keeps inner products, so
    texts that share words, a topic or spellings are close and unrelated texts nearly orthogonal, while every
    component carries signal, as a real embedding's does.
    """
    rows: list[int] = []
    features: list[bytes] = []
    word_mask: list[bool] = []
    for row, text in enumerate(texts):
        feats, word_count = _features(text)
        features += feats
        rows += [row] * len(feats)
        word_mask += [True] * word_count + [False] * (len(feats) - word_count)
    hashes = np.fromiter((zlib.crc32(f) for f in features), dtype=np.int64, count=len(features))
    bins = hashes % dimensions
    signs = np.where(hashes & 0x80000000, -1.0, 1.0) * _rotation_signs(dimensions)[bins]
    signs[np.array(word_mask, dtype=bool)] *= 2.0  # whole words weigh more than trigrams
    slots = np.array(rows, dtype=np.int64) * dimensions + bins
    counts = np.bincount(slots, weights=signs, minlength=len(texts) * dimensions)
    matrix = counts.astype(np.float64).reshape(len(texts), dimensions)
    norms = np.linalg.norm(matrix, axis=1)
    empty = norms == 0.0
    matrix[empty, 0], norms[empty] = 1.0, 1.0
    matrix /= norms[:, None]
    return _rotate(matrix)


def embed_text(text: str, dimensions: int) -> np.ndarray:
    """The emulator's vector for one text (the same as its row in :func:`embed_texts`)."""
    return embed_texts([text], dimensions)[0]


def _id_list(value: Any) -> tuple[str, list[dict[str, Any]]] | None:
    """The single list of ``{"id": ...}`` objects in a JSON object, with its key, if there is one."""
    if not isinstance(value, dict) or len(value) != 1:
        return None
    key, items = next(iter(value.items()))
    if isinstance(items, list) and items and all(isinstance(i, dict) and "id" in i for i in items):
        return key, items
    return None


def _batched_schema(schema: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """For a schema ``{key: [{id, ...}]}``: the key, the item schema and the definitions it may refer to."""
    defs = {**schema.get("$defs", {}), **schema.get("definitions", {})}
    props = schema.get("properties") or {}
    if len(props) != 1:
        return None
    key, prop = next(iter(props.items()))
    if "$ref" in prop:
        prop = defs.get(str(prop["$ref"]).rsplit("/", 1)[-1], {})
    items = prop.get("items") or {}
    if "$ref" in items:
        items = defs.get(str(items["$ref"]).rsplit("/", 1)[-1], {})
    if prop.get("type") == "array" and "id" in (items.get("properties") or {}):
        return key, items, defs
    return None


def packed_key(schema: Any) -> str | None:
    """The key of a packed request's item list (``items``), when ``schema`` has the packed shape."""
    batched = _batched_schema(schema) if isinstance(schema, dict) else None
    return batched[0] if batched else None


def structured_reply(messages: list[dict[str, Any]], response_format: dict[str, Any]) -> str:
    """The JSON text answered for ``response_format`` ``json_object`` or ``json_schema``.

    A request that packs several inputs, as a JSON object holding one list of ``{"id": ..., ...}`` items, under
    a schema of the same shape, gets one item per input, with the same ids, each answered on its own; the
    item's other fields its answer's schema names (a proof tag) are copied back as a model following the
    instruction would.
    """
    answer = chat_reply(messages)
    if response_format.get("type") != "json_schema":
        return json.dumps({"answer": answer})
    schema = (response_format.get("json_schema") or {}).get("schema", {})
    batched = _batched_schema(schema) if isinstance(schema, dict) else None
    try:
        packed = _id_list(json.loads(last_user_text(messages)))
    except ValueError:
        packed = None
    if batched and packed:
        key, item_schema, defs = batched
        _, inputs = packed
        out = []
        echoed = set(item_schema.get("properties") or {})  # the item's fields its answer carries back (id, tag)
        for item in inputs:
            body = {k: v for k, v in item.items() if k not in echoed}
            text = next(iter(body.values())) if len(body) == 1 else json.dumps(body)
            reply = chat_reply([{"role": "user", "content": str(text)}])
            value = value_for_schema(item_schema, reply, defs, prompt=str(text))
            value.update({k: v for k, v in item.items() if k in echoed})
            out.append(value)
        return json.dumps({key: out})
    return json.dumps(value_for_schema(schema, answer, prompt=last_user_text(messages)))
