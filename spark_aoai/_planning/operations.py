"""Planning: rows into requests (units), and answers back onto rows, for each API.

An operation is built on the driver as a small frozen spec and shipped to the executors; ``for_task`` makes
what one task uses there, with its own state (the embeddings vector cache and the vector length seen).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa

from spark_aoai._core import constants as C
from spark_aoai._core.columns import (
    ERROR_FIELD,
    FINISH_REASON_FIELD,
    USAGE_FIELD,
    encode_strings,
    encode_typed,
    encode_vectors,
)
from spark_aoai._core.contract import (
    ErrorCode,
    InvalidInputError,
    OutputField,
    Route,
    RowError,
    RowResults,
    Unit,
    Usage,
    add_usage,
    invalid_input,
)
from spark_aoai._planning.structured import MisfitError, StructuredOutput
from spark_aoai._planning.template import Template
from spark_aoai._planning.tokens import estimate_message_tokens, estimate_tokens
from spark_aoai._wire import chat as chat_wire
from spark_aoai._wire import embeddings as embeddings_wire
from spark_aoai._wire import responses as responses_wire
from spark_aoai._wire.media import Media

WIRES = {"chat_completions": chat_wire, "responses": responses_wire}


@dataclass(frozen=True)
class Asked:
    """What a chat unit carries into its re-ask: the messages sent, the output they must fit, and what the
    earlier asks cost."""

    messages: tuple[dict[str, Any], ...]
    options: dict[str, Any]
    structured: StructuredOutput
    reasks: int = 0
    attempts: int = 0
    usage: Usage | None = None


@dataclass(frozen=True)
class ChatOperation:
    """Chat completions (or the Responses API, ``api="responses"``): one unit per row; ``options`` (in chat
    completions' names) go into every request body, mapped by the API's wire module.

    An item is a prompt string or a list of messages, or with ``template`` a dict of the row's referenced
    columns, rendered here on the executor. With ``structured`` the answer is parsed and converted into the
    output column's type; one that does not fit is re-asked up to ``output_retries`` times with the problem
    fed back, then the row gets ``invalid_output``. ``output_for`` (picklable) gives each row its own
    structured output from its dict (the SQL ``ai_classify(text, labels)``). With ``media`` the item is a
    dict holding the row's text and its image / PDF, attached to the last user message (``_media``).
    """

    model: str | None
    system_prompt: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    api: str = "chat_completions"
    template: Template | None = None
    system_template: Template | None = None
    null_placeholder: str | None = None
    structured: StructuredOutput | None = None
    output_retries: int = C.OUTPUT_RETRIES
    output_for: Callable[[Mapping[str, Any]], StructuredOutput] | None = None
    media: Media | None = None

    @property
    def outputs(self) -> tuple[OutputField, ...]:
        answer = OutputField("outputCol", "response", pa.string(), encode_strings)
        if self.structured is not None:
            arrow_type = self.structured.arrow_type()
            answer = OutputField("outputCol", "response", arrow_type, encode_typed(arrow_type))
        return (answer, ERROR_FIELD, USAGE_FIELD, FINISH_REASON_FIELD)

    @property
    def route(self) -> Route:
        return WIRES[self.api].ROUTE

    def for_task(self) -> ChatOperation:
        return self

    def _completion_budget(self) -> int:
        options = self.options
        return int(options.get("max_completion_tokens") or options.get("max_tokens") or C.DEFAULT_COMPLETION_TOKENS)

    def _request(self, item: Any) -> tuple[list[dict[str, Any]], StructuredOutput | None]:
        if self.media is None:
            return self._text_request(item)
        text, attachments = self.media.split(item)
        messages, structured = self._text_request(text)
        return attachments.attach(messages), structured

    def _text_request(self, item: Any) -> tuple[list[dict[str, Any]], StructuredOutput | None]:
        if self.template is None:
            return chat_wire.to_messages(item, self.system_prompt), self.structured
        if not isinstance(item, Mapping):
            raise InvalidInputError(f"a template needs the row's fields, got a {type(item).__name__}")
        system = self.system_prompt
        if self.system_template is not None:
            system = self.system_template.render(item, self.null_placeholder)
        prompt = self.template.render(item, self.null_placeholder)
        structured = self.output_for(item) if self.output_for is not None else self.structured
        return chat_wire.to_messages(prompt, system), structured

    def _unit(self, results: RowResults, rows: list[int], messages: list[dict[str, Any]], options: dict[str, Any],
              context: Asked | None) -> Unit:  # fmt: skip
        body = WIRES[self.api].build_body(messages, options, self.model)
        tokens = estimate_message_tokens(messages) + self._completion_budget()
        return Unit(results, [rows], body, tokens, context=context)

    def plan(self, items: Sequence[Any], results: RowResults) -> list[Unit]:
        units = []
        for row, item in enumerate(items):
            try:
                messages, structured = self._request(item)
            except InvalidInputError as exc:
                results.fail([row], invalid_input(str(exc)))
                continue
            if structured is None:
                units.append(self._unit(results, [row], messages, self.options, None))
                continue
            options = {**self.options, "response_format": structured.response_format()}
            units.append(self._unit(results, [row], messages, options, Asked(tuple(messages), options, structured)))
        return units

    def accept(self, unit: Unit, body: Any, request_id: str | None) -> list[Unit] | None:
        answer = WIRES[self.api].parse_answer(body)
        asked: Asked | None = unit.context
        attempts = unit.attempts + (asked.attempts if asked else 0)
        usage = add_usage(asked.usage if asked else None, answer.usage)
        if answer.error is not None:
            unit.results.fail(unit.rows, answer.error.with_attempts(attempts, request_id), usage)
            return None
        if asked is None:
            unit.results.succeed(unit.rows, answer.text, usage, answer.finish_reason)
            return None
        try:
            value = asked.structured.parse(answer.text)
        except MisfitError as misfit:
            if asked.reasks < self.output_retries:
                return [self._reask(unit, answer.text or "", str(misfit), replace(
                    asked, reasks=asked.reasks + 1, attempts=attempts, usage=usage))]  # fmt: skip
            raw = (answer.text or "")[: C.RAW_ANSWER_CHARS]
            message = f"the answer does not fit the output schema ({misfit}) after {asked.reasks} re-ask(s): {raw}"
            error = RowError(200, ErrorCode.INVALID_OUTPUT, message[: C.MAX_MESSAGE_CHARS], attempts, request_id)
            unit.results.fail(unit.rows, error, usage)
            return None
        unit.results.succeed(unit.rows, value, usage, answer.finish_reason)
        return None

    def _reask(self, unit: Unit, raw: str, problem: str, asked: Asked) -> Unit:
        """The same request with the misfit answer and what is wrong with it (a system message) appended."""
        feedback = (
            f"Your previous answer does not fit the required JSON schema: {problem}. "
            "Answer again with only a JSON value that fits the schema."
        )
        messages = [*asked.messages, {"role": "assistant", "content": raw}, {"role": "system", "content": feedback}]
        follow_up = self._unit(
            unit.results, unit.rows, messages, asked.options, replace(asked, messages=tuple(messages))
        )
        follow_up.refreshed_credential = unit.refreshed_credential
        follow_up.stored_as = unit.stored_as or unit.payload  # what a re-run asks first, so it finds the answer
        return follow_up

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
        # a request's tokens over its texts by their length (the service bills them together)
        shares = usage.split([len(t) for t in texts]) if usage is not None else [None] * len(texts)
        retry: list[int] = []
        answers: list[tuple[list[int], Any, Usage | None]] = []
        for position, (text, group, vector, share) in enumerate(zip(texts, unit.groups, vectors, shares, strict=True)):
            if not isinstance(vector, np.ndarray) or vector.shape[0] != self.dimensions:
                retry.append(position)
                continue
            self.cache.put(text, vector)
            answers.append((group[:1], vector, share))  # the first row of a text carries what it cost
            if len(group) > 1:
                answers.append((group[1:], vector, share.nothing() if share is not None else None))
        unit.results.succeed_many(answers)
        if retry:  # their share of this 200 was billed: the rows carry it when they end
            for position in retry:
                unit.billed = add_usage(unit.billed, shares[position])
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
