"""What the emulator answers: deterministic chat replies, embeddings and JSON that fits a schema.

Everything here is a pure function of the request, so a test can compute the answer a row should get and tell
whether each row got its own.
"""

from __future__ import annotations

import hashlib
import json
import re
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


def _stable_hash(feature: str) -> int:
    return int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")


def embed_text(text: str, dimensions: int) -> np.ndarray:
    """A unit-length float32 vector of hashed words and character trigrams.

    Texts that share words or spellings get close vectors; unrelated texts are nearly orthogonal.
    """
    vector = np.zeros(dimensions, dtype=np.float64)
    lowered = text.lower()
    features = [f"w:{w}" for w in _WORD.findall(lowered)]
    padded = f"  {lowered}  "
    features += [f"c:{padded[i : i + 3]}" for i in range(len(padded) - 2)]
    if not features:
        features = ["empty"]
    hashes = np.array([_stable_hash(f) for f in features], dtype=np.uint64)
    slots = (hashes % np.uint64(dimensions)).astype(np.int64)
    signs = np.where((hashes >> np.uint64(63)) == 1, -1.0, 1.0)
    weights = np.array([2.0 if f.startswith("w:") else 1.0 for f in features])
    np.add.at(vector, slots, signs * weights)
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:
        vector[0] = 1.0
        norm = 1.0
    return (vector / norm).astype(np.float32)


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
        return {name: value_for_schema(sub, f"{seed_text}:{name}", defs) for name, sub in props.items()}
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


def structured_reply(messages: list[dict[str, Any]], response_format: dict[str, Any]) -> str:
    """The JSON text answered for ``response_format`` ``json_object`` or ``json_schema``."""
    answer = chat_reply(messages)
    if response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema", {})
        return json.dumps(value_for_schema(schema, answer))
    return json.dumps({"answer": answer})
