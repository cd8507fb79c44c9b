"""Embeddings: deduplicated texts packed into batched base64 requests; a rejected batch is split to isolate.

Vectors are decoded with numpy from little-endian float32 bytes and placed by each item's ``index``.
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spark_aoai._http import ErrorInfo
from spark_aoai._partition import MalformedResponseError, RowResults, Unit, error_value
from spark_aoai._tokens import estimate_tokens

MAX_INPUTS_PER_REQUEST = 2048
DEFAULT_CACHE_BYTES = 64 * 2**20


class VectorCache:
    """Recent vectors by text, bounded in bytes, so repeats across a partition's batches are not re-sent."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.items: OrderedDict[str, np.ndarray] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, text: str) -> np.ndarray | None:
        with self.lock:
            vector = self.items.get(text)
            if vector is not None:
                self.items.move_to_end(text)
            return vector

    def put(self, text: str, vector: np.ndarray) -> None:
        if vector.nbytes > self.max_bytes:
            return
        with self.lock:
            if text in self.items:
                return
            self.items[text] = vector
            self.size += vector.nbytes
            while self.size > self.max_bytes:
                _, evicted = self.items.popitem(last=False)
                self.size -= evicted.nbytes


def decode_embedding(encoded: Any, dimensions: int | None) -> np.ndarray:
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
        vector = np.asarray(encoded, dtype=np.float32)
    else:
        raise MalformedResponseError(f"an embedding is a {type(encoded).__name__}")
    if dimensions and vector.shape[0] != dimensions:
        raise MalformedResponseError(f"an embedding has {vector.shape[0]} dimensions, not the {dimensions} asked for")
    return vector


def pack(texts: Sequence[str], tokens: Sequence[int], batch_size: int, max_batch_tokens: int) -> list[list[int]]:
    """Group text positions into requests of at most ``batch_size`` texts and ``max_batch_tokens`` tokens.

    A single text over the token budget goes alone (the service decides whether it is too long).
    """
    groups: list[list[int]] = []
    current: list[int] = []
    current_tokens = 0
    for position, count in enumerate(tokens):
        if current and (len(current) >= batch_size or current_tokens + count > max_batch_tokens):
            groups.append(current)
            current, current_tokens = [], 0
        current.append(position)
        current_tokens += count
    if current:
        groups.append(current)
    return groups


@dataclass
class EmbeddingOperation:
    """Embeddings: identical texts are sent once; each request carries up to ``batch_size`` texts.

    Within a batch, duplicates share one input; across a partition's batches, a cache of recent vectors
    (``cache_bytes``, per task, never pickled) answers repeats without a request.
    """

    deployment: str
    model_in_body: bool
    dimensions: int | None = None
    batch_size: int = 1000
    max_batch_tokens: int = 200_000
    cache_bytes: int = DEFAULT_CACHE_BYTES
    path: str = "embeddings"
    extra_fields: tuple[str, ...] = ()
    _cache: VectorCache | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cache": None}

    @property
    def cache(self) -> VectorCache:
        if self._cache is None:
            self._cache = VectorCache(self.cache_bytes)
        return self._cache

    def _unit(self, results: RowResults, texts: list[str], groups: list[list[int]], tokens: int) -> Unit:
        payload: dict[str, Any] = {"input": texts, "encoding_format": "base64"}
        if self.dimensions:
            payload["dimensions"] = self.dimensions
        if self.model_in_body:
            payload["model"] = self.deployment
        return Unit(results, groups, payload, tokens)

    def plan(self, items: Sequence[Any], results: RowResults) -> list[Unit]:
        rows_of: dict[str, list[int]] = {}
        for row, item in enumerate(items):
            if item is None:
                results.fail([row], error_value(None, "invalid_input", "the input text is null"))
            elif not isinstance(item, str):
                results.fail([row], error_value(None, "invalid_input", f"the input is a {type(item).__name__}"))
            elif not item.strip():
                results.fail([row], error_value(None, "invalid_input", "the input text is empty"))
            else:
                rows_of.setdefault(item, []).append(row)
        for text in list(rows_of):
            cached = self.cache.get(text)
            if cached is not None:
                results.succeed(rows_of.pop(text), cached)
        texts = list(rows_of)
        tokens = [estimate_tokens(text) for text in texts]
        batch_size = max(1, min(self.batch_size, MAX_INPUTS_PER_REQUEST))
        units = []
        for group in pack(texts, tokens, batch_size, self.max_batch_tokens):
            unit_texts = [texts[p] for p in group]
            units.append(
                self._unit(results, unit_texts, [rows_of[t] for t in unit_texts], sum(tokens[p] for p in group))
            )
        return units

    def accept(self, unit: Unit, body: Any, request_id: str | None) -> None:
        try:
            data = body["data"]
        except (KeyError, TypeError) as exc:
            raise MalformedResponseError("the embeddings response has no data") from exc
        if not isinstance(data, list) or len(data) != len(unit.groups):
            raise MalformedResponseError(
                f"asked for {len(unit.groups)} embeddings, got {len(data) if isinstance(data, list) else 0}"
            )
        vectors: list[np.ndarray | None] = [None] * len(unit.groups)
        for item in data:
            index = item.get("index") if isinstance(item, dict) else None
            if not isinstance(index, int) or not 0 <= index < len(vectors) or vectors[index] is not None:
                raise MalformedResponseError(f"an embedding has a missing, repeated or out-of-range index {index!r}")
            vectors[index] = decode_embedding(item.get("embedding"), self.dimensions)
        for text, group, vector in zip(unit.payload["input"], unit.groups, vectors, strict=True):
            assert vector is not None  # every index 0..n-1 was seen exactly once above
            self.cache.put(text, vector)
            unit.results.succeed(group, vector)

    def split(self, unit: Unit, error: ErrorInfo) -> list[Unit]:
        if error.status != 400 or len(unit.groups) < 2:
            return []
        texts = list(unit.payload["input"])
        middle = len(texts) // 2
        halves = []
        for part in (slice(0, middle), slice(middle, None)):
            part_texts = texts[part]
            halves.append(
                self._unit(unit.results, part_texts, unit.groups[part], sum(estimate_tokens(t) for t in part_texts))
            )
        return halves
