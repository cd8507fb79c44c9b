"""Planning: rows into requests (units), and answers back onto rows, for each API.

An operation is built on the driver as a small frozen spec and shipped to the executors; ``for_task`` makes
what one task uses there, with its own state (the embeddings vector cache and the vector length seen).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from spark_aoai import _constants as C
from spark_aoai._contract import (
    ERROR_FIELD,
    FINISH_REASON_FIELD,
    USAGE_FIELD,
    InvalidInputError,
    OutputField,
    Route,
    RowError,
    RowResults,
    Unit,
    Usage,
    encode_strings,
    encode_vectors,
    invalid_input,
)
from spark_aoai._tokens import DEFAULT_COMPLETION_TOKENS, estimate_message_tokens, estimate_tokens
from spark_aoai._wire import chat as chat_wire
from spark_aoai._wire import embeddings as embeddings_wire
from spark_aoai._wire import responses as responses_wire

WIRES = {"chat_completions": chat_wire, "responses": responses_wire}


@dataclass(frozen=True)
class ChatOperation:
    """Chat completions (or the Responses API, ``api="responses"``): one unit per row; ``options`` (in chat
    completions' names) go into every request body, mapped by the API's wire module."""

    model: str | None
    system_prompt: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    api: str = "chat_completions"
    outputs: tuple[OutputField, ...] = (
        OutputField("outputCol", "response", pa.string(), encode_strings),
        ERROR_FIELD,
        USAGE_FIELD,
        FINISH_REASON_FIELD,
    )

    @property
    def route(self) -> Route:
        return WIRES[self.api].ROUTE

    def for_task(self) -> ChatOperation:
        return self

    def plan(self, items: Sequence[Any], results: RowResults) -> list[Unit]:
        units = []
        completion_budget = int(
            self.options.get("max_completion_tokens") or self.options.get("max_tokens") or DEFAULT_COMPLETION_TOKENS
        )
        for row, item in enumerate(items):
            try:
                messages = chat_wire.to_messages(item, self.system_prompt)
            except InvalidInputError as exc:
                results.fail([row], invalid_input(str(exc)))
                continue
            body = WIRES[self.api].build_body(messages, self.options, self.model)
            units.append(Unit(results, [[row]], body, estimate_message_tokens(messages) + completion_budget))
        return units

    def accept(self, unit: Unit, body: Any, request_id: str | None) -> None:
        answer = WIRES[self.api].parse_answer(body)
        if answer.error is not None:
            unit.results.fail(unit.rows, answer.error.with_attempts(unit.attempts, request_id))
        else:
            unit.results.succeed(unit.rows, answer.text, answer.usage, answer.finish_reason)

    def split(self, unit: Unit, error: RowError) -> list[Unit]:
        return []


NO_EMBEDDING_USAGE = Usage(prompt_tokens=0, total_tokens=0)


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


def pack(tokens: Sequence[int], batch_size: int, max_batch_tokens: int) -> list[list[int]]:
    """Group positions into requests of at most ``batch_size`` items and ``max_batch_tokens`` tokens.

    A single item over the token budget goes alone (the service decides whether it is too long).
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


def text_input(item: Any) -> str:
    """The text of an embeddings row; ``InvalidInputError`` for null, non-string or blank input."""
    if item is None:
        raise InvalidInputError("the input text is null")
    if not isinstance(item, str):
        raise InvalidInputError(f"the input is a {type(item).__name__}")
    if not item.strip():
        raise InvalidInputError("the input text is empty")
    return item


@dataclass(frozen=True)
class EmbeddingOperation:
    """Embeddings: identical texts are sent once; each request carries up to ``batch_size`` texts.

    Within a batch, duplicates share one input; across a partition's batches, a cache of recent vectors
    (``cache_bytes``, per task) answers repeats without a request.
    """

    model: str | None
    dimensions: int | None = None
    batch_size: int = C.EMBEDDING_BATCH_SIZE
    max_batch_tokens: int = C.EMBEDDING_MAX_BATCH_TOKENS
    cache_bytes: int = C.VECTOR_CACHE_BYTES
    route: Route = embeddings_wire.ROUTE
    outputs: tuple[OutputField, ...] = (
        OutputField("outputCol", "embedding", pa.list_(pa.float32()), encode_vectors),
        ERROR_FIELD,
        USAGE_FIELD,
    )

    def for_task(self) -> EmbeddingTask:
        return EmbeddingTask(self, VectorCache(self.cache_bytes))


class EmbeddingTask:
    """One task's embeddings: the spec, its vector cache, and the vector length every answer must have."""

    def __init__(self, spec: EmbeddingOperation, cache: VectorCache) -> None:
        self.spec, self.cache = spec, cache
        self.dimensions = spec.dimensions
        self.lock = threading.Lock()

    def _unit(self, results: RowResults, texts: list[str], groups: list[list[int]], tokens: int) -> Unit:
        body = embeddings_wire.build_body(texts, self.spec.dimensions, self.spec.model)
        return Unit(results, groups, body, tokens)

    def plan(self, items: Sequence[Any], results: RowResults) -> list[Unit]:
        rows_of: dict[str, list[int]] = {}
        for row, item in enumerate(items):
            try:
                rows_of.setdefault(text_input(item), []).append(row)
            except InvalidInputError as exc:
                results.fail([row], invalid_input(str(exc)))
        for text in list(rows_of):
            cached = self.cache.get(text)
            if cached is not None:
                results.succeed(rows_of.pop(text), cached, NO_EMBEDDING_USAGE)
        texts = list(rows_of)
        tokens = [estimate_tokens(text) for text in texts]
        batch_size = max(1, min(self.spec.batch_size, C.MAX_EMBEDDING_INPUTS))
        units = []
        for group in pack(tokens, batch_size, self.spec.max_batch_tokens):
            unit_texts = [texts[p] for p in group]
            units.append(
                self._unit(results, unit_texts, [rows_of[t] for t in unit_texts], sum(tokens[p] for p in group))
            )
        return units

    def accept(self, unit: Unit, body: Any, request_id: str | None) -> None:
        """Place each usable vector on its rows. Vectors that cannot be used are asked for again: the unit
        shrinks to their texts and ``MalformedResponseError`` sends it back to the retry loop, so the good
        ones are neither lost nor billed twice."""
        vectors, usage = embeddings_wire.parse_vectors(body, len(unit.groups), self.dimensions)
        good = [v for v in vectors if isinstance(v, np.ndarray)]
        with self.lock:  # the first answer fixes the task's vector length
            if good and self.dimensions is None:
                self.dimensions = good[0].shape[0]
        texts = list(unit.payload["input"])
        shares = usage.split([estimate_tokens(t) for t in texts]) if usage is not None else [None] * len(texts)
        retry: list[int] = []
        for position, (text, group, vector, share) in enumerate(zip(texts, unit.groups, vectors, shares, strict=True)):
            if not isinstance(vector, np.ndarray) or vector.shape[0] != self.dimensions:
                retry.append(position)
                continue
            self.cache.put(text, vector)
            unit.results.succeed(group[:1], vector, share)  # the first row of a text carries what it cost
            if len(group) > 1:
                unit.results.succeed(group[1:], vector, share.nothing() if share is not None else None)
        if retry:
            first = vectors[retry[0]]
            reason = (
                str(first) if isinstance(first, Exception) else f"another length than this task's {self.dimensions}"
            )
            unit.groups = [unit.groups[p] for p in retry]
            unit.payload = embeddings_wire.build_body([texts[p] for p in retry], self.spec.dimensions, self.spec.model)
            unit.tokens = sum(estimate_tokens(texts[p]) for p in retry)
            raise embeddings_wire.MalformedResponseError(f"{len(retry)} of {len(texts)} embeddings unusable: {reason}")

    def split(self, unit: Unit, error: RowError) -> list[Unit]:
        if error.status != 400 or len(unit.groups) < 2:
            return []
        texts = list(unit.payload["input"])
        middle = len(texts) // 2
        return [
            self._unit(unit.results, texts[part], unit.groups[part], sum(estimate_tokens(t) for t in texts[part]))
            for part in (slice(0, middle), slice(middle, None))
        ]
