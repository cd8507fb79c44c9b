"""The contract between the engine, the wire formats and the adapters.

- ``ErrorCode``: every error code the library itself produces (service errors keep Azure's ``error.code``).
- ``RowError``: the one error value a row can carry; the Spark and Arrow error types are derived from it.
- ``Usage``: token counts of one row.
- ``RowResults``: one batch's outcome; each row is resolved exactly once, with a value or an error.
- ``Unit``: one request over a set of rows; ``Operation``: what an API defines so the engine can send it.
- ``OutputField``: one output column an operation can produce, with its Arrow type and encoder; Transformers
  and UDFs are both built from these declarations.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Protocol

import pyarrow as pa


class ErrorCode(str, enum.Enum):
    """The codes the library produces in ``error.code``. A service error keeps Azure's own code instead."""

    INVALID_INPUT = "invalid_input"
    HTTP_ERROR = "http_error"
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    TLS_ERROR = "tls_error"
    MALFORMED_RESPONSE = "malformed_response"
    REFUSAL = "refusal"
    TOOL_CALL = "tool_call"
    INCOMPLETE = "incomplete"
    CREDENTIAL_ERROR = "credential_error"
    QUOTA_EXCEEDED = "quota_exceeded"
    BUDGET_EXHAUSTED = "budget_exhausted"
    CLIENT_ERROR = "client_error"
    BATCH_FAILED = "batch_failed"
    BATCH_EXPIRED = "batch_expired"
    BATCH_CANCELLED = "batch_cancelled"
    INTERNAL_ERROR = "internal_error"
    INVALID_OUTPUT = "invalid_output"

    def __str__(self) -> str:
        return self.value


class Retry(enum.Enum):
    """Whether another attempt may cure a row with one of our codes, and when."""

    NEVER = "never"  # the input, the answer or the settings: the same request fails the same way
    NOW = "now"  # no usable answer came (network, garbled body, token provider): retried within the run
    LATER = "later"  # a stop that a later run cures (quota, budget, an unfinished batch): ``retry_failed``


# Every ErrorCode, classified once (a test checks none is missing): the engine's retry policy and
# ``retry_failed`` both read their codes from here.
RETRY_BY_CODE: dict[ErrorCode, Retry] = {
    ErrorCode.INVALID_INPUT: Retry.NEVER,
    ErrorCode.HTTP_ERROR: Retry.NEVER,  # its status decides (408/409/429/5xx are retried by status)
    ErrorCode.TIMEOUT: Retry.NOW,
    ErrorCode.CONNECTION_ERROR: Retry.NOW,
    ErrorCode.TLS_ERROR: Retry.NEVER,
    ErrorCode.MALFORMED_RESPONSE: Retry.NOW,
    ErrorCode.REFUSAL: Retry.NEVER,
    ErrorCode.TOOL_CALL: Retry.NEVER,
    ErrorCode.INCOMPLETE: Retry.NEVER,
    ErrorCode.CREDENTIAL_ERROR: Retry.NOW,
    ErrorCode.QUOTA_EXCEEDED: Retry.LATER,
    ErrorCode.BUDGET_EXHAUSTED: Retry.LATER,
    ErrorCode.CLIENT_ERROR: Retry.NEVER,
    ErrorCode.BATCH_FAILED: Retry.LATER,  # batch mode: a new job over these rows submits them again
    ErrorCode.BATCH_EXPIRED: Retry.LATER,
    ErrorCode.BATCH_CANCELLED: Retry.LATER,
    ErrorCode.INTERNAL_ERROR: Retry.LATER,
    ErrorCode.INVALID_OUTPUT: Retry.NEVER,  # already re-asked ``outputRetries`` times
}


def retryable_codes(later: bool) -> frozenset[str]:
    """Our codes worth another attempt within the run, or with ``later`` in a later run too (those include the
    first: what the run's retries did not cure may pass later)."""
    wanted = (Retry.NOW, Retry.LATER) if later else (Retry.NOW,)
    return frozenset(code.value for code, retry in RETRY_BY_CODE.items() if retry in wanted)


@dataclass(frozen=True)
class RowError:
    """Why a row has no answer: HTTP status (None when no response came), code, message, attempts, request id."""

    status: int | None
    code: str
    message: str
    attempts: int = 0
    request_id: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.code, ErrorCode):
            object.__setattr__(self, "code", self.code.value)

    def with_attempts(self, attempts: int, request_id: str | None = None) -> RowError:
        return RowError(self.status, self.code, self.message, attempts, request_id or self.request_id)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


ROW_ERROR_ARROW_TYPE = pa.struct(
    [("status", pa.int32()), ("code", pa.string()), ("message", pa.string()), ("attempts", pa.int32()),
     ("request_id", pa.string())]
)  # fmt: skip


@dataclass(frozen=True)
class Usage:
    """Token counts the service billed for a row; None where the API does not report a figure."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def figures(self) -> tuple[int | None, ...]:
        return (self.prompt_tokens, self.completion_tokens, self.total_tokens, self.cached_tokens,
                self.reasoning_tokens)  # fmt: skip

    def nothing(self) -> Usage:
        """Zero of each figure this usage reports: what a row answered by a duplicate or a cache carries."""
        return Usage(*(None if value is None else 0 for value in self.figures()))

    def split(self, weights: Sequence[int]) -> list[Usage]:
        """This usage over rows in proportion to ``weights``, in whole tokens that add up to each figure."""
        columns = [_whole_parts(value, weights) for value in self.figures()]
        return [Usage(*parts) for parts in zip(*columns, strict=True)]


def add_usage(first: Usage | None, second: Usage | None) -> Usage | None:
    """Two requests' usage summed, figure by figure (None where neither reports one)."""
    if first is None or second is None:
        return second if first is None else first
    pairs = zip(first.figures(), second.figures(), strict=True)
    return Usage(*(None if a is None and b is None else (a or 0) + (b or 0) for a, b in pairs))


def _whole_parts(total: int | None, weights: Sequence[int]) -> list[int | None]:
    """``total`` in whole parts proportional to ``weights`` (largest remainder), summing exactly to ``total``."""
    if total is None:
        return [None] * len(weights)
    weight_sum = sum(max(0, w) for w in weights)
    if weight_sum == 0:
        weights, weight_sum = [1] * len(weights), len(weights)
    exact = [total * max(0, w) / weight_sum for w in weights]
    parts = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: exact[i] - parts[i], reverse=True)
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return list(parts)


USAGE_ARROW_TYPE = pa.struct([(f.name, pa.int64()) for f in fields(Usage)])


CACHED = "cache"  # the source of a row answered from the response cache


class MalformedResponseError(Exception):
    """A 200 whose body does not have the shape the operation needs; retried like a transport failure."""


class InvalidInputError(ValueError):
    """A row's input cannot be sent; the message goes into the row's ``invalid_input`` error."""


class RowResults:
    """The outcome of one batch's rows; each row is resolved exactly once, with a value or an error."""

    def __init__(self, size: int) -> None:
        self.values: list[Any] = [None] * size
        self.errors: list[RowError | None] = [None] * size
        self.usage: list[Usage | None] = [None] * size
        self.finish_reasons: list[str | None] = [None] * size
        # where each answer came from: the deployment that answered, or CACHED for a stored answer
        self.sources: list[str | None] = [None] * size
        # how sure the model was of each answer (a cascade's cheap levels: from the answer's logprobs)
        self.confidence: list[float | None] = [None] * size
        self._resolved = [False] * size
        self._pending = size
        self._lock = threading.Lock()
        self.done = threading.Event()
        if size == 0:
            self.done.set()

    def __len__(self) -> int:
        return len(self.values)

    def _resolve(self, rows: Sequence[int]) -> None:
        for row in rows:
            if self._resolved[row]:
                raise AssertionError(f"row {row} resolved twice")
            self._resolved[row] = True
        self._pending -= len(rows)
        if self._pending == 0:
            self.done.set()

    def succeed(
        self, rows: Sequence[int], value: Any, usage: Usage | None = None, finish_reason: str | None = None
    ) -> None:
        with self._lock:
            self._resolve(rows)
            for row in rows:
                self.values[row] = value
                self.usage[row] = usage
                self.finish_reasons[row] = finish_reason

    def succeed_many(self, answers: Sequence[tuple[Sequence[int], Any, Usage | None]]) -> None:
        """``succeed`` for many groups of rows at once (one lock): ``(rows, value, usage)`` each."""
        with self._lock:
            for rows, value, usage in answers:
                self._resolve(rows)
                for row in rows:
                    self.values[row] = value
                    self.usage[row] = usage

    def fail(self, rows: Sequence[int], error: RowError, usage: Usage | None = None) -> None:
        """Resolve ``rows`` with ``error``; ``usage`` is what each of them was billed all the same (a cut-short
        or misfit answer is paid for)."""
        with self._lock:
            self._resolve(rows)
            for row in rows:
                self.errors[row] = error
                self.usage[row] = usage

    def add_billed(self, rows: Sequence[int], billed: Usage) -> None:
        """Add to ``rows`` (split in whole tokens) what earlier attempts of their request were billed."""
        with self._lock:
            for row, share in zip(rows, billed.split([1] * len(rows)), strict=True):
                self.usage[row] = add_usage(self.usage[row], share)

    def unresolved(self, rows: Sequence[int] | None = None) -> list[int]:
        """The rows (of ``rows``, else of the batch) still without a value or an error."""
        with self._lock:
            candidates = range(len(self._resolved)) if rows is None else rows
            return [row for row in candidates if not self._resolved[row]]

    def charge_nothing(self, rows: Sequence[int]) -> None:
        """Zero the usage of ``rows``: their answer was paid for elsewhere (a stored answer, a duplicate)."""
        with self._lock:
            for row in rows:
                usage = self.usage[row]
                self.usage[row] = None if usage is None else usage.nothing()

    def set_confidence(self, rows: Sequence[int], confidence: float | None) -> None:
        """Record how sure the model was of the answer of ``rows`` (set before the rows are resolved)."""
        with self._lock:
            for row in rows:
                self.confidence[row] = confidence

    def mark_source(self, rows: Sequence[int], source: str) -> None:
        """Record where the answered rows among ``rows`` got their answer (a deployment name, or ``CACHED``)."""
        with self._lock:
            for row in rows:
                if self.errors[row] is None:
                    self.sources[row] = source

    def mask_errors(self, clean: Callable[[str], str]) -> None:
        """Pass every error message through ``clean`` (secret redaction), whoever wrote it."""
        with self._lock:
            for row, error in enumerate(self.errors):
                if error is not None:
                    message = clean(error.message)
                    if message != error.message:
                        self.errors[row] = replace(error, message=message)

    def first_error(self) -> RowError | None:
        return next((error for error in self.errors if error is not None), None)


@dataclass
class Unit:
    """One request: a payload over ``groups`` of rows (the rows of each input item, in payload order)."""

    results: RowResults
    groups: list[list[int]]
    payload: dict[str, Any]
    tokens: int
    attempts: int = 0
    refreshed_credential: bool = False
    context: Any = None  # what the operation carries from an answer to its follow-up unit (a re-ask)
    # a pack: its 200 is stored even when some items are asked again, so a re-run reads the answered ones from
    # it and asks again only for the others
    store_partial: bool = False
    stored_as: dict[str, Any] | None = None  # a re-ask: the row's own request, which its answer is stored under
    target: int = 0  # the deployment (index into the failover list) the next attempt goes to
    target_since: int = 0  # ``attempts`` when the unit moved to that deployment
    billed: Usage | None = None  # what 200s this unit could not use were billed; its rows carry it in the end
    unknown_shapes: int = 0  # 200s whose JSON the operation could not read (re-sent at most once)

    @property
    def rows(self) -> list[int]:
        return [row for group in self.groups for row in group]


@dataclass(frozen=True)
class Route:
    """Where an API lives: its path, and whether it sits under a deployment (``/openai/deployments/{name}/``)."""

    path: str
    deployment_scoped: bool = True
    v1: bool = False  # on Azure, served under /openai/v1/ (unless an api-version is asked for)


@dataclass(frozen=True)
class OutputField:
    """An output column: the Param naming it, its default name, its Arrow type and how results fill it."""

    param: str
    default_name: str | None
    arrow_type: pa.DataType
    encode: Callable[[RowResults], pa.Array] = field(compare=False)


class Operation(Protocol):
    """What an API defines (chat, embeddings); the engine does the rest.

    The operation built on the driver is a plain, picklable spec; ``for_task`` makes the object a task uses,
    with whatever per-task state it needs (the embeddings vector cache), on the executor.
    """

    @property
    def route(self) -> Route: ...

    def for_task(self) -> TaskOperation: ...


class TaskOperation(Protocol):
    def plan(self, items: Sequence[Any], results: RowResults) -> list[Unit]:
        """Make the batch's units; rows with invalid input are failed here and sent nowhere."""

    def accept(self, unit: Unit, body: Any, request_id: str | None) -> list[Unit] | None:
        """Place a 200's results on the unit's rows, or raise ``MalformedResponseError``.

        May instead return follow-up units for rows it leaves unresolved (a re-ask after an answer that does not
        fit the output schema); the engine sends them like any other unit.
        """

    def split(self, unit: Unit, error: RowError) -> list[Unit]:
        """Smaller units to isolate a non-retryable failure, or [] to fail the whole unit."""


def invalid_input(message: str) -> RowError:
    return RowError(None, ErrorCode.INVALID_INPUT, message)
