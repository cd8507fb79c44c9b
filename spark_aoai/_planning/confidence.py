"""How sure a deployment was of each answer, from the token log-probabilities of its chat completion.

A cascade's cheap levels ask for ``logprobs`` (``LOGPROB_OPTIONS``); ``Scored`` wraps their operation so each
answer's confidence lands in ``RowResults.confidence`` *before* the operation resolves the rows (the batch may
be handed on the moment its last row is resolved). A row's confidence is the probability the model gave the
whole answer it wrote: ``exp`` of the sum of the logprobs of the answer's tokens (JSON syntax costs next to
nothing, so for ``{"label": "bug"}`` it is the probability of ``bug``; for an extraction, of all its fields
together). In a packed answer each item's confidence is that of the tokens of its own entry. An answer without
logprobs (a server that does not return them, a body read from an older cache entry) has no confidence, and a
cascade never keeps it. Free of pyspark.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spark_aoai._core import constants as C
from spark_aoai._core.contract import OutputField, Route, RowError, RowResults, TaskOperation, Unit
from spark_aoai._planning.packing import Pack

LOGPROB_OPTIONS = {"logprobs": True}


def token_logprobs(body: Any) -> list[tuple[str, float]] | None:
    """``(token, logprob)`` of the answer's tokens, or None when the body carries no usable logprobs."""
    try:
        entries = body["choices"][0]["logprobs"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    if not isinstance(entries, list) or not entries or len(entries) > C.LOGPROB_MAX_TOKENS_READ:
        return None
    tokens = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            return None
        token, logprob = entry.get("token"), entry.get("logprob")
        if not isinstance(token, str) or isinstance(logprob, bool) or not isinstance(logprob, (int, float)):
            return None
        if not math.isfinite(logprob) or logprob > 0:
            return None
        tokens.append((token, float(logprob)))
    return tokens


def confidence(tokens: Sequence[tuple[str, float]], start: int = 0, end: int | None = None) -> float:
    """The probability of the tokens that start within ``[start, end)`` of the answer's text.

    >>> round(confidence([("{", -0.0), ("bug", math.log(0.8)), ("}", 0.0)]), 3)
    0.8
    """
    total, offset = 0.0, 0
    for token, logprob in tokens:
        if offset >= start and (end is None or offset < end):
            total += logprob
        offset += len(token)
    return math.exp(total)


def item_spans(text: str, key: str = "items") -> dict[str, tuple[int, int]]:
    """For a packed answer ``{"items": [{"id": ..., "output": ...}, ...]}``: each id's span in ``text``.

    >>> item_spans('{"items": [{"id": "0", "output": "a"}, {"id": "1", "output": "b"}]}')
    {'0': (11, 37), '1': (39, 65)}
    """
    decoder = json.JSONDecoder()
    opening = text.find(f'"{key}"')
    position = text.find("[", opening) + 1 if opening >= 0 else 0
    spans: dict[str, tuple[int, int]] = {}
    while 0 < position < len(text):
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text) or text[position] == "]":
            break
        try:
            entry, end = decoder.raw_decode(text, position)
        except ValueError:
            break
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            spans.setdefault(entry["id"], (position, end))
        position = end
    return spans


def unit_confidence(unit: Unit, body: Any) -> list[tuple[list[int], float | None]]:
    """Each group of the unit's rows with its answer's confidence (None without logprobs)."""
    tokens = token_logprobs(body)
    if tokens is None:
        return [(group, None) for group in unit.groups]
    if not isinstance(unit.context, Pack):
        return [(unit.rows, confidence(tokens))]
    spans = item_spans("".join(token for token, _ in tokens))
    scored: list[tuple[list[int], float | None]] = []
    for position, group in enumerate(unit.groups):
        span = spans.get(str(position))
        scored.append((group, None if span is None else confidence(tokens, *span)))
    return scored


@dataclass(frozen=True)
class Scored:
    """An operation whose answers' confidence is recorded in ``RowResults.confidence`` (ask for logprobs)."""

    inner: Any  # the Operation (ChatOperation, PackedChatOperation)

    @property
    def outputs(self) -> tuple[OutputField, ...]:
        return tuple(self.inner.outputs)

    @property
    def route(self) -> Route:
        return self.inner.route  # type: ignore[no-any-return]

    def for_task(self) -> ScoredTask:
        return ScoredTask(self.inner.for_task())


@dataclass(frozen=True)
class ScoredTask:
    inner: TaskOperation

    def plan(self, items: Sequence[Any], results: RowResults) -> list[Unit]:
        return self.inner.plan(items, results)

    def accept(self, unit: Unit, body: Any, request_id: str | None) -> list[Unit] | None:
        for rows, sure in unit_confidence(unit, body):
            unit.results.set_confidence(rows, sure)
        return self.inner.accept(unit, body, request_id)

    def split(self, unit: Unit, error: RowError) -> list[Unit]:
        return self.inner.split(unit, error)
