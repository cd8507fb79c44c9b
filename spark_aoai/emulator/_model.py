"""What the emulator answers: deterministic chat replies, embeddings and JSON that fits a schema.

Everything here is a pure function of the request, so a test can compute the answer a row should get and tell
whether each row got its own.
"""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

import numpy as np

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
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last user message, or of the last message when none is from the user."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message.get("content"))
    return message_text(messages[-1].get("content")) if messages else ""


def chat_reply(messages: list[dict[str, Any]]) -> str:
    """The emulator's answer to a conversation: it names the last user message, so each row's is its own.

    >>> chat_reply([{"role": "user", "content": "Hi"}])
    'Emulated answer to: Hi'
    """
    return f"Emulated answer to: {last_user_text(messages)}"


def embedding_dimensions(model: str, dimensions: int | None) -> int:
    """The vector size the emulator returns for a deployment (named after its model) and ``dimensions``."""
    if dimensions:
        return int(dimensions)
    for name, size in EMBEDDING_DIMENSIONS.items():
        if name in model:
            return size
    return DEFAULT_EMBEDDING_DIMENSIONS


def _features(text: str) -> tuple[list[bytes], int]:
    lowered = text.lower()
    padded = f"  {lowered}  "
    words = [f"w:{w}".encode() for w in _WORD.findall(lowered)]
    return words + [padded[i : i + 3].encode() for i in range(len(padded) - 2)], len(words)


def embed_texts(texts: list[str], dimensions: int) -> np.ndarray:
    """Unit-length float32 vectors (one row per text) of hashed words and character trigrams.

    Texts that share words or spellings get close vectors; unrelated texts are nearly orthogonal. The whole
    batch is hashed and binned in one numpy pass, which keeps the emulator off the critical path of benchmarks.
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
    signs = np.where(hashes & 0x80000000, -1.0, 1.0)
    signs[np.array(word_mask, dtype=bool)] *= 2.0  # whole words weigh more than trigrams
    slots = np.array(rows, dtype=np.int64) * dimensions + hashes % dimensions
    matrix = np.bincount(slots, weights=signs, minlength=len(texts) * dimensions).reshape(len(texts), dimensions)
    norms = np.linalg.norm(matrix, axis=1)
    empty = norms == 0.0
    matrix[empty, 0], norms[empty] = 1.0, 1.0
    return (matrix / norms[:, None]).astype(np.float32)


def embed_text(text: str, dimensions: int) -> np.ndarray:
    """The emulator's vector for one text (the same as its row in :func:`embed_texts`)."""
    return embed_texts([text], dimensions)[0]


def value_for_schema(schema: Any, seed_text: str, defs: dict[str, Any] | None = None) -> Any:
    """A value that validates against a JSON schema (the subset structured outputs allow)."""
    if not isinstance(schema, dict):
        return seed_text
    defs = defs if defs is not None else {**schema.get("$defs", {}), **schema.get("definitions", {})}
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return value_for_schema(defs.get(name, {}), seed_text, defs)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return value_for_schema(schema[key][0], seed_text, defs)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties", {})
        return {name: value_for_schema(sub, seed_text, defs) for name, sub in props.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        return [value_for_schema(schema.get("items", {}), seed_text, defs) for _ in range(count)]
    if kind == "integer":
        return int(schema.get("minimum", len(seed_text)))
    if kind == "number":
        return float(schema.get("minimum", len(seed_text)))
    if kind == "boolean":
        return len(seed_text) % 2 == 0
    if kind == "null":
        return None
    return seed_text


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


def structured_reply(messages: list[dict[str, Any]], response_format: dict[str, Any]) -> str:
    """The JSON text answered for ``response_format`` ``json_object`` or ``json_schema``.

    A request that packs several inputs, as a JSON object holding one list of ``{"id": ..., ...}`` items, under
    a schema of the same shape, gets one item per input, with the same ids, each answered on its own.
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
        for item in inputs:
            body = {k: v for k, v in item.items() if k != "id"}
            text = next(iter(body.values())) if len(body) == 1 else json.dumps(body)
            reply = chat_reply([{"role": "user", "content": str(text)}])
            value = value_for_schema(item_schema, reply, defs)
            value["id"] = item["id"]
            out.append(value)
        return json.dumps({key: out})
    return json.dumps(value_for_schema(schema, answer))
