"""The partition engine: requests over sets of row indices, many in flight, results placed back by index.

A partition arrives as a stream of batches. For each batch the operation (chat, embeddings) plans *units*:
one request payload over a set of rows (one row for chat, many deduplicated texts for embeddings). Sender
threads, gated by the partition's ``RateController``, send units, retry them and place each result on its
rows. A batch is yielded once every row in it holds exactly one value or one error, in input order, while the
next batch is already being worked on; at most ``MAX_PENDING_BATCHES`` batches are held, so memory stays flat.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from spark_aoai._config import ClientConfig
from spark_aoai._http import ErrorInfo, Transport
from spark_aoai._ratecontrol import RateController
from spark_aoai._retry import parse_retry_after, retry_delay, should_retry
from spark_aoai.exceptions import RequestFailedError

logger = logging.getLogger("spark_aoai")

MAX_PENDING_BATCHES = 2
T = TypeVar("T")


def error_value(
    status: int | None, code: str, message: str, attempts: int = 0, request_id: str | None = None
) -> dict[str, Any]:
    """The error column's struct as a dict."""
    return {"status": status, "code": code, "message": message, "attempts": attempts, "request_id": request_id}


class RowResults:
    """The outcome of one batch's rows; each row is resolved exactly once, with a value or an error."""

    def __init__(self, size: int, extra_fields: Sequence[str] = ()) -> None:
        self.values: list[Any] = [None] * size
        self.errors: list[dict[str, Any] | None] = [None] * size
        self.extras: dict[str, list[Any]] = {name: [None] * size for name in extra_fields}
        self._resolved = [False] * size
        self._pending = size
        self._lock = threading.Lock()
        self.done = threading.Event()
        if size == 0:
            self.done.set()

    def _resolve(self, rows: Sequence[int]) -> None:
        for row in rows:
            if self._resolved[row]:
                raise AssertionError(f"row {row} resolved twice")
            self._resolved[row] = True
        self._pending -= len(rows)
        if self._pending == 0:
            self.done.set()

    def succeed(self, rows: Sequence[int], value: Any, extras: dict[str, Any] | None = None) -> None:
        with self._lock:
            for row in rows:
                self.values[row] = value
                for name, extra in (extras or {}).items():
                    self.extras[name][row] = extra
            self._resolve(rows)

    def fail(self, rows: Sequence[int], error: dict[str, Any]) -> None:
        with self._lock:
            for row in rows:
                self.errors[row] = error
            self._resolve(rows)

    def unresolved(self) -> list[int]:
        with self._lock:
            return [i for i, done in enumerate(self._resolved) if not done]


@dataclass
class Unit:
    """One request: a payload over ``groups`` of rows (the rows of each input item, in payload order)."""

    results: RowResults
    groups: list[list[int]]
    payload: dict[str, Any]
    tokens: int
    attempts: int = 0
    refreshed_credential: bool = False

    @property
    def rows(self) -> list[int]:
        return [row for group in self.groups for row in group]


class MalformedResponseError(Exception):
    """A 200 whose body does not have the shape the operation needs; retried like a transport failure."""


class Operation(Protocol):
    """What chat and embeddings each define; the engine does the rest."""

    @property
    def path(self) -> str:
        """The operation's path: ``chat/completions`` or ``embeddings``."""

    @property
    def extra_fields(self) -> Sequence[str]:
        """Names of per-row extras besides the value (usage, finish_reason)."""

    def plan(self, items: Sequence[Any], results: RowResults) -> list[Unit]:
        """Make the batch's units; rows with invalid input are failed here and sent nowhere."""

    def accept(self, unit: Unit, body: Any, request_id: str | None) -> None:
        """Place a 200's results on the unit's rows, or raise ``MalformedResponseError``."""

    def split(self, unit: Unit, error: ErrorInfo) -> list[Unit]:
        """Smaller units to isolate a non-retryable failure, or [] to fail the whole unit."""


class Sender:
    """Sender threads over one pooled session: the one retry loop of the library."""

    def __init__(self, config: ClientConfig, operation: Operation, deadline: float | None) -> None:
        limits = config.limits
        self.config, self.operation, self.deadline = config, operation, deadline
        shares = max(1, limits.concurrent_tasks)
        rps = limits.max_requests_per_minute / 60.0 / shares if limits.max_requests_per_minute else None
        tps = limits.max_tokens_per_minute / 60.0 / shares if limits.max_tokens_per_minute else None
        self.controller = RateController(limits.concurrency, rps, tps)
        self.transport = Transport(config, limits.concurrency)
        self.url = config.endpoint.url(config.deployment, operation.path)
        self.queue: queue.Queue[Unit | None] = queue.Queue()
        self.random = random.Random()
        self.threads: list[threading.Thread] = []
        self.closing = threading.Event()

    def submit(self, unit: Unit) -> None:
        if len(self.threads) < self.config.limits.concurrency:
            thread = threading.Thread(target=self._work, name=f"aoai-sender-{len(self.threads)}", daemon=True)
            self.threads.append(thread)
            thread.start()
        self.queue.put(unit)

    def close(self) -> None:
        """Stop sending: units not yet started are dropped (their batch is no longer wanted), then threads end."""
        self.closing.set()
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        for _ in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join(timeout=5)
        self.transport.close()

    def _work(self) -> None:
        while True:
            unit = self.queue.get()
            if unit is None:
                return
            try:
                self._run(unit)
            except Exception as exc:  # a bug must cost rows an error value, never a hung or lost partition
                logger.exception("spark_aoai: unexpected error while sending a request")
                message = f"internal error: {type(exc).__name__}: {exc}"
                unit.results.fail(
                    self._open_rows(unit), error_value(None, "internal_error", message[:500], unit.attempts)
                )

    @staticmethod
    def _open_rows(unit: Unit) -> list[int]:
        open_rows = set(unit.results.unresolved())
        return [row for row in unit.rows if row in open_rows]

    def _fail(self, unit: Unit, error: ErrorInfo, request_id: str | None = None) -> None:
        unit.results.fail(unit.rows, error_value(error.status, error.code, error.message, unit.attempts, request_id))

    def _deadline_error(self) -> ErrorInfo:
        return ErrorInfo(None, "timeout", "the deadline (deadlineSeconds) passed before this row got an answer")

    def _run(self, unit: Unit) -> None:
        policy, limits = self.config.retry, self.config.limits
        while not self.closing.is_set():
            if not self.controller.acquire(unit.tokens, self.deadline):
                self._fail(unit, self._deadline_error())
                return
            unit.attempts += 1
            read_timeout = limits.read_timeout
            if self.deadline is not None:
                read_timeout = max(0.001, min(read_timeout, self.deadline - time.monotonic()))
            sent = time.monotonic()
            outcome = self.transport.post(self.url, unit.payload, read_timeout)
            retry_after = parse_retry_after(outcome.headers, time.time())
            self.controller.release(outcome.status, outcome.headers, retry_after, time.monotonic() - sent)
            error = outcome.error
            if error is None:
                try:
                    self.operation.accept(unit, outcome.body, outcome.request_id)
                    return
                except MalformedResponseError as exc:
                    error = ErrorInfo(200, "malformed_response", str(exc)[:500])
            if error.status == 401 and not unit.refreshed_credential:
                unit.refreshed_credential = True
                if self.config.credential.refresh_after_unauthorized():
                    continue
            if not should_retry(error.status, error.code):
                smaller = self.operation.split(unit, error)
                if smaller:
                    for part in smaller:
                        self.queue.put(part)
                    return
                self._fail(unit, error, outcome.request_id)
                return
            if unit.attempts >= policy.max_attempts:
                self._fail(unit, error, outcome.request_id)
                return
            delay = retry_delay(unit.attempts, outcome.headers, policy, self.random, time.time())
            if self.deadline is not None and time.monotonic() + delay >= self.deadline:
                self._fail(unit, self._deadline_error(), outcome.request_id)
                return
            if outcome.status != 429:  # a 429 already paused every sender through the controller
                time.sleep(delay)


def run_partition(
    batches: Iterator[tuple[Sequence[Any], T]], operation: Operation, config: ClientConfig
) -> Iterator[tuple[RowResults, T]]:
    """Send every batch's units and yield ``(results, context)`` per batch, in input order."""
    deadline = None
    if config.limits.deadline_seconds is not None:
        deadline = time.monotonic() + config.limits.deadline_seconds
    sender = Sender(config, operation, deadline)
    pending: deque[tuple[RowResults, T]] = deque()
    try:
        for items, context in batches:
            results = RowResults(len(items), operation.extra_fields)
            for unit in operation.plan(items, results):
                sender.submit(unit)
            pending.append((results, context))
            while pending and (pending[0][0].done.is_set() or len(pending) >= MAX_PENDING_BATCHES):
                yield _finished(pending.popleft(), config)
        while pending:
            yield _finished(pending.popleft(), config)
    finally:
        sender.close()


def _finished(entry: tuple[RowResults, T], config: ClientConfig) -> tuple[RowResults, T]:
    results, _ = entry
    results.done.wait()
    if config.fail_on_error:
        first = next((error for error in results.errors if error is not None), None)
        if first is not None:
            raise RequestFailedError(first)
    return entry
