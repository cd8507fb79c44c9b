"""The Batch API: batches, their lifecycle in a background thread, and the output and error files they write.

A batch goes ``validating`` -> ``in_progress`` -> ``finalizing`` -> ``completed`` over
:attr:`BatchSettings.seconds` (10% validating, 80% answering its lines evenly, ``request_counts`` growing line by
line, 10% finalizing), or ends ``failed`` (its file did not validate, or a fail fault: Azure's
``token_limit_exceeded``), ``expired`` (``expire_after_lines``) or ``cancelling`` -> ``cancelled``.

Each line is answered by :func:`~spark_aoai.emulator._dispatch.answer`, the code that answers the online
request, with the answer-changing faults and none of the transport faults, rate limits or throttles. The files,
as Azure writes them (one line ``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``
per request, in no particular order: shuffled):

- output (``output_file_id``): the requests answered with a 2xx;
- error (``error_file_id``, always set once lines ran, empty when none failed, as Azure does): the requests
  answered with another status (same shape, the error body as ``body``), and those with no response
  (``response: null``, ``error: {code, message}``): ``request_timeout`` (``line_error_rate``), then
  ``batch_expired`` or ``batch_cancelled`` for the lines a stopped batch never ran.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any

from spark_aoai.emulator import _dispatch
from spark_aoai.emulator._batch_input import ENDPOINTS, Line, error, parse, route_of
from spark_aoai.emulator._errors import bad_request, cannot_cancel, invalid, no_such
from spark_aoai.emulator._faults import marked
from spark_aoai.emulator._files import OUTPUT_PURPOSE, FileStore
from spark_aoai.emulator._settings import Settings
from spark_aoai.emulator._state import State
from spark_aoai.emulator._validate import inputs_of

COMPLETION_WINDOWS = ("24h",)
WINDOW_SECONDS = 24 * 3600
MAX_METADATA_PAIRS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512
# why a line got no response: (code, message)
TIMED_OUT = ("request_timeout", "The underlying call to the model timed out.")
EXPIRED = ("batch_expired", "This request could not be executed before the completion window expired.")
CANCELLED = ("batch_cancelled", "The batch was cancelled before this request executed.")
CANCELLABLE = ("validating", "in_progress")


def batch_line_fails(custom_id: str, rate: float) -> bool:
    """Whether ``line_error_rate`` picks the line ``custom_id``: the first 8 bytes of its SHA-256 below ``rate``.

    >>> batch_line_fails("row-1", 0.0), batch_line_fails("row-1", 1.0)
    (False, True)
    """
    if rate <= 0:
        return False
    digest = hashlib.sha256(custom_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


@dataclass
class Job:
    """One batch; its mutable fields change under :class:`Batches`' lock."""

    id: str
    endpoint: str
    route: str
    input_file_id: str
    data: bytes
    metadata: dict[str, str] | None
    api_version: str | None
    settings: Settings
    created_at: int
    status: str = "validating"
    times: dict[str, int] = field(default_factory=dict)  # status -> when it began
    errors: list[dict[str, Any]] | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    stuck: bool = False  # a cancel that never ends: the batch stays cancelling

    def object(self) -> dict[str, Any]:
        """The batch object (openai's ``Batch``)."""
        stamps = ("in_progress", "finalizing", "completed", "failed", "expired", "cancelling", "cancelled")
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": None if self.errors is None else {"object": "list", "data": self.errors},
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "expires_at": self.created_at + WINDOW_SECONDS,
            **{f"{status}_at": self.times.get(status) for status in stamps},
            "request_counts": {"total": self.total, "completed": self.completed, "failed": self.failed},
            "metadata": self.metadata,
        }


class Batches:
    """The batches of one emulator, each run by a daemon thread of its own."""

    def __init__(self, state: State, files: FileStore) -> None:
        self.state, self.files = state, files
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._closed = threading.Event()

    def create(self, body: Any, api_version: str | None) -> dict[str, Any]:
        """Start a batch (``POST /batches``), refusing a request the Batch API refuses."""
        if not isinstance(body, dict):
            raise bad_request("The request body is not a valid JSON object.")
        file_id = body.get("input_file_id")
        if not isinstance(file_id, str) or not file_id:
            raise invalid("input_file_id", "Missing required parameter: 'input_file_id'.", "missing_required_parameter")
        stored = self.files.get(file_id)
        if stored.purpose != "batch":
            raise invalid("input_file_id", f"The file '{file_id}' was not uploaded with purpose 'batch'.")
        endpoint, window = body.get("endpoint"), body.get("completion_window")
        route = route_of(endpoint)
        if route is None:
            served = "', '".join(ENDPOINTS)
            raise invalid("endpoint", f"Invalid value for 'endpoint': {endpoint!r}. Supported values are: '{served}'.")
        if window not in COMPLETION_WINDOWS:
            raise invalid("completion_window", f"Invalid value for 'completion_window': {window!r}. Supported: '24h'.")
        job = Job(
            f"batch_{uuid.uuid4()}",
            str(endpoint),
            route,
            file_id,
            stored.data,
            _metadata(body.get("metadata")),
            api_version,
            self.state.settings,
            int(time.time()),
        )
        with self._lock:
            self._jobs[job.id] = job
            snapshot = job.object()
        self.state.count_batch("created")
        threading.Thread(target=self._run, args=(job,), name=f"aoai-{job.id}", daemon=True).start()
        return snapshot

    def get(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            return self._job(batch_id).object()

    def newest_first(self) -> list[dict[str, Any]]:
        with self._lock:
            return [job.object() for job in reversed(self._jobs.values())]

    def cancel(self, batch_id: str, stuck: bool = False) -> dict[str, Any]:
        """``cancelling`` now; the worker stops before its next line and ends ``cancelled`` (with ``stuck``,
        never)."""
        with self._lock:
            job = self._job(batch_id)
            if job.status in CANCELLABLE:
                job.status, job.times["cancelling"] = "cancelling", int(time.time())
                job.stuck = stuck
            elif job.status != "cancelling":
                raise cannot_cancel(job.status)
            return job.object()

    def close(self) -> None:
        """Stop the workers (the server is shutting down)."""
        self._closed.set()

    def _job(self, batch_id: str) -> Job:
        job = self._jobs.get(batch_id)
        if job is None:
            raise no_such("batch", batch_id)
        return job

    # -- the worker -----------------------------------------------------------------------------------------

    def _run(self, job: Job) -> None:
        try:
            self._process(job)
        except Exception as failure:  # a bug: the batch fails visibly instead of hanging in in_progress
            traceback.print_exc()
            with self._lock:
                job.status, job.times["failed"] = "failed", int(time.time())
                job.errors = [error("internal_error", f"The emulator failed: {failure!r}")]
            self.state.count_batch("failed")

    def _process(self, job: Job) -> None:
        limits = job.settings.batch
        started = time.monotonic()
        settings = job.settings
        lines, errors = parse(
            job.data, job.route, limits.max_lines, lambda name: _dispatch.deployed_model(settings, name) is not None
        )
        if not errors and self._fails(job):
            errors = [
                error(
                    "token_limit_exceeded",
                    "The number of enqueued tokens has surpassed the configured limit for the deployment "
                    f"'{lines[0].body['model']}'. Please either increase the limit or try again once the current "
                    "jobs have finished.",
                )
            ]
        if not self._wait(started + 0.1 * limits.seconds):
            return
        if errors:
            if self._move(job, "failed", errors=errors):
                self.state.count_batch("failed")
                return
            lines = []  # cancelled while validating a file that would have failed
        outputs: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        run: int | None = 0
        if lines and self._move(job, "in_progress", total=len(lines)):
            run = self._answer_lines(job, lines, outputs, failures)
        if run is not None:
            self._finish(job, lines, run, outputs, failures)

    def _fails(self, job: Job) -> bool:
        marker = job.settings.batch.fail_marker
        if marker and marker.encode("utf-8") in job.data:
            return True
        return self.state.roll(job.settings.batch.fail_rate)

    def _answer_lines(
        self, job: Job, lines: list[Line], outputs: list[dict[str, Any]], failures: list[dict[str, Any]]
    ) -> int | None:
        """Answer lines until done, cancelled or expired: how many ran (None: the server is shutting down)."""
        limit = job.settings.batch.expire_after_lines
        begin, span = time.monotonic(), 0.8 * job.settings.batch.seconds
        for index, line in enumerate(lines):
            with self._lock:
                stopping = job.status == "cancelling"
            if stopping or (limit is not None and index >= limit):
                return index
            records, ok = self._answer(job, line)
            (outputs if ok else failures).extend(records)
            with self._lock:
                job.completed += ok
                job.failed += not ok
            if not self._wait(begin + span * (index + 1) / len(lines)):
                return None
        return len(lines)

    def _answer(self, job: Job, line: Line) -> tuple[list[dict[str, Any]], bool]:
        """The line's output records (two with ``duplicate_marker``), and whether they go to the output file
        (a 2xx)."""
        batch = job.settings.batch
        if batch_line_fails(line.custom_id, batch.line_error_rate):
            self.state.count_batch_line(job.route, TIMED_OUT[0], inputs_of(job.route, line.body))
            return [_record(line.custom_id, None, TIMED_OUT)], False
        status, body, inputs = _dispatch.answer(self.state, job.settings, job.route, line.body, job.api_version)
        self.state.count_batch_line(job.route, str(status), inputs, body)
        shown: int | str = "OK" if any(marked(batch.text_status_marker, t) for t in inputs) else status
        response = {"status_code": shown, "request_id": str(uuid.uuid4()), "body": body}
        record, ok = _record(line.custom_id, response, None), 200 <= status < 300
        if ok and any(marked(batch.duplicate_marker, t) for t in inputs):
            return [record, _another_answer(record)], ok
        return [record], ok

    def _finish(
        self, job: Job, lines: list[Line], run: int, outputs: list[dict[str, Any]], failures: list[dict[str, Any]]
    ) -> None:
        """Write the files and end: ``completed`` (after ``finalizing``), ``expired`` or ``cancelled``."""
        with self._lock:
            stuck = job.stuck and job.status == "cancelling"
        if stuck:  # a cancel that never completes: cancelling until the server stops
            self._closed.wait()
            return
        rest = lines[run:]
        finalizing = not rest and self._move(job, "finalizing")  # every line ran, no cancel came after the last
        if finalizing and not self._wait(time.monotonic() + 0.1 * job.settings.batch.seconds):
            return
        with self._lock:
            cancelled = job.status == "cancelling"
        reason = CANCELLED if cancelled else EXPIRED
        ending = "cancelled" if cancelled else "expired" if rest else "completed"
        for line in rest:
            failures.append(_record(line.custom_id, None, reason))
            self.state.count_batch_line(job.route, reason[0], inputs_of(job.route, line.body))
        output = self.files.add(f"{job.id}_output.jsonl", OUTPUT_PURPOSE, _jsonl(outputs, job.id))
        errors = self.files.add(f"{job.id}_error.jsonl", OUTPUT_PURPOSE, _jsonl(failures, job.id))
        with self._lock:
            job.output_file_id, job.error_file_id, job.total = output.id, errors.id, len(lines)
            job.status, job.times[ending] = ending, int(time.time())
        self.state.count_batch(ending)

    def _move(self, job: Job, status: str, **changes: Any) -> bool:
        """Begin ``status`` (setting ``changes``) unless the batch is being cancelled; False when it is."""
        with self._lock:
            if job.status == "cancelling":
                return False
            job.status, job.times[status] = status, int(time.time())
            for name, value in changes.items():
                setattr(job, name, value)
        return True

    def _wait(self, deadline: float) -> bool:
        """Sleep until ``deadline`` (monotonic); False when the server is shutting down."""
        return not self._closed.wait(max(0.0, deadline - time.monotonic()))


def _another_answer(record: dict[str, Any]) -> dict[str, Any]:
    """The same line again with another answer: its text changed (chat completions and the Responses API)."""
    again = json.loads(json.dumps(record))
    body = again["response"]["body"]
    for choice in body.get("choices") or []:
        message = choice.get("message") or {}
        if isinstance(message.get("content"), str):
            message["content"] = "a different answer: " + message["content"]
    for item in body.get("output") or []:
        for part in item.get("content") or [] if isinstance(item, dict) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                part["text"] = "a different answer: " + part["text"]
    again["id"] = f"batch_req_{uuid.uuid4().hex}"
    return again


def _record(custom_id: str, response: dict[str, Any] | None, reason: tuple[str, str] | None) -> dict[str, Any]:
    """One line of an output or error file."""
    return {
        "id": f"batch_req_{uuid.uuid4().hex}",
        "custom_id": custom_id,
        "response": response,
        "error": None if reason is None else {"code": reason[0], "message": reason[1]},
    }


def _jsonl(records: list[dict[str, Any]], seed: str) -> bytes:
    """The records as JSON lines, shuffled: the Batch API promises no order."""
    random.Random(seed).shuffle(records)
    return b"".join(json.dumps(record).encode("utf-8") + b"\n" for record in records)


def _metadata(value: Any) -> dict[str, str] | None:
    """``metadata`` as the Batch API takes it: up to 16 string pairs, keys up to 64 and values 512 characters."""
    if value is None:
        return None
    fits = (
        isinstance(value, dict)
        and len(value) <= MAX_METADATA_PAIRS
        and all(isinstance(k, str) and len(k) <= MAX_METADATA_KEY for k in value)
        and all(isinstance(v, str) and len(v) <= MAX_METADATA_VALUE for v in value.values())
    )
    if not fits:
        raise invalid(
            "metadata",
            f"Invalid 'metadata': up to {MAX_METADATA_PAIRS} pairs of strings, keys up to {MAX_METADATA_KEY} and "
            f"values up to {MAX_METADATA_VALUE} characters.",
        )
    return dict(value)
