"""Embeddings on the wire: a batch's body, and its vectors decoded (base64 little-endian float32) and checked."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from spark_aoai._core.contract import MalformedResponseError, Route, Usage
from spark_aoai._wire.chat import parse_usage

ROUTE = Route("embeddings")


def build_body(texts: Sequence[str], dimensions: int | None, model: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"input": list(texts), "encoding_format": "base64"}
    if dimensions:
        body["dimensions"] = dimensions
    if model is not None:
        body["model"] = model
    return body


def decode_embedding(encoded: Any) -> np.ndarray:
    """A float32 vector from a base64 string (or, from servers that ignore base64, a list of floats)."""
    if isinstance(encoded, str):
        try:
            raw = base64.b64decode(encoded, validate=True)
        except ValueError as exc:
            raise MalformedResponseError("an embedding is not valid base64") from exc
        if len(raw) % 4:
            raise MalformedResponseError("an embedding's byte length is not a multiple of 4")
        vector = np.frombuffer(raw, dtype="<f4")
    elif isinstance(encoded, list):
        try:
            vector = np.asarray(encoded, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise MalformedResponseError("an embedding holds something other than numbers") from exc
        if vector.ndim != 1:
            raise MalformedResponseError("an embedding is not a flat list of numbers")
    else:
        raise MalformedResponseError(f"an embedding is a {type(encoded).__name__}")
    if vector.shape[0] == 0:
        raise MalformedResponseError("an embedding is empty")
    if not np.isfinite(vector).all():
        raise MalformedResponseError("an embedding holds NaN or infinite values")
    return vector


def parse_vectors(
    body: Any, count: int, dimensions: int | None
) -> tuple[list[np.ndarray | MalformedResponseError], Usage | None]:
    """The ``count`` vectors of a response in input order (placed by ``index``), all of one length.

    ``dimensions`` is the length every vector must have (asked for, or already seen in this task); None takes
    the most common length in the response. A vector that cannot be used (NaN, infinite, another length, not
    decodable) is returned as its ``MalformedResponseError``, so the others can be kept; a response whose
    shape is wrong (no data, a wrong count, bad indices) raises one.
    """
    data = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(data, list):
        raise MalformedResponseError("the embeddings response has no data")
    if len(data) != count:
        raise MalformedResponseError(f"asked for {count} embeddings, got {len(data)}")
    placed: list[np.ndarray | MalformedResponseError | None] = [None] * count
    for item in data:
        index = item.get("index") if isinstance(item, Mapping) else None
        if not isinstance(index, int) or not 0 <= index < count or placed[index] is not None:
            raise MalformedResponseError(f"an embedding has a missing, repeated or out-of-range index {index!r}")
        try:
            placed[index] = decode_embedding(item.get("embedding"))
        except MalformedResponseError as exc:
            placed[index] = exc
    lengths = [v.shape[0] for v in placed if isinstance(v, np.ndarray)]
    expected = dimensions or (max(set(lengths), key=lengths.count) if lengths else None)
    vectors: list[np.ndarray | MalformedResponseError] = []
    for vector in placed:
        assert vector is not None  # every index 0..count-1 was seen exactly once above
        if isinstance(vector, np.ndarray) and vector.shape[0] != expected:
            vector = MalformedResponseError(f"an embedding has {vector.shape[0]} dimensions, not {expected}")
        vectors.append(vector)
    return vectors, parse_usage(body.get("usage"))
