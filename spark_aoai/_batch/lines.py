"""Batch mode on the executors: rows into JSONL request lines (and uploaded files), and the batches' output
lines back onto rows. Free of pyspark.

A line is the request the online engine would send for a unit (the same wire format, the same planning),
with the deployment as ``model``; its ``custom_id`` is the request's response-cache key (route, deployment,
body), so

- identical requests in a partition are one line (answered once, the others carry zero usage),
- a row finds its answer again from its own content, whatever the order of the output file, and
- a partition is known by the hash of its ids (``key``): the manifest maps it to the files it uploaded.

Rows whose request is in the response cache are not written; they are answered from it when joined.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from spark_aoai._batch.api import BatchApi, line_url
from spark_aoai._batch.results import CONFLICT, Answers, FileLimits, JobFiles
from spark_aoai._client.http import Outcome, clean_message, error_from_response
from spark_aoai._core.arrow import array
from spark_aoai._core.constants import MAX_MESSAGE_CHARS
from spark_aoai._core.contract import (
    CACHED,
    ErrorCode,
    MalformedResponseError,
    RowError,
    RowResults,
    Unit,
    invalid_input,
)
from spark_aoai._engine.hooks import Hooks, open_hooks
from spark_aoai._engine.plan import Inputs, Plan
from spark_aoai._features.cache import CacheFactory, cache_key
from spark_aoai.exceptions import RequestFailedError

RECORD_FIELDS = (("key", pa.string()), ("first", pa.string()), ("digest", pa.string()), ("lines", pa.int64()),
                 ("bytes", pa.int64()), ("file_id", pa.string()), ("rows", pa.int64()))  # fmt: skip
RECORD_DDL = ", ".join(f"{name} {'string' if kind == pa.string() else 'long'}" for name, kind in RECORD_FIELDS)
NO_REASK = "batch mode does not re-ask (online mode re-asks up to outputRetries times)"
_ID_BITS = 160  # a custom_id carries 40 hex digits of sha256


class LineIds:
    """The ``custom_id`` and JSONL line of each unit of a partition, in the order the units are planned.

    Identical requests share an id (one line answers them), unless ``dedup`` is off: then the n-th copy of a
    request in the partition gets its own id and line, as online mode sends each copy.
    """

    def __init__(self, plan: Plan) -> None:
        self.route, self.deployment, self.dedup = plan.operation.route, plan.config.deployment, plan.dedup
        self.url = line_url(plan.config, self.route)
        self.copies: dict[str, int] = {}

    def line(self, unit: Unit) -> tuple[str, bytes]:
        # the request's identity is the response cache's key (route, deployment, body): one way to name a request
        custom_id = "r-" + cache_key(self.route, self.deployment, unit.payload)[: _ID_BITS // 4]
        if not self.dedup:
            copy = self.copies[custom_id] = self.copies.get(custom_id, -1) + 1
            custom_id = f"{custom_id}-{copy}"
        line = {
            "custom_id": custom_id,
            "method": "POST",
            "url": self.url,
            "body": {**unit.payload, "model": self.deployment},
        }
        return custom_id, json.dumps(line, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def too_large(line: bytes, limits: FileLimits) -> RowError:
    message = f"the request is {len(line):,} bytes, over batchMaxBytesPerFile ({limits.max_bytes:,})"
    return invalid_input(message)


class JsonlParts:
    """Lines counted into parts within the limits, and written to local files when ``write``."""

    def __init__(self, limits: FileLimits, write: bool) -> None:
        self.limits = limits
        self.folder = tempfile.mkdtemp(prefix="spark_aoai_batch_") if write else None
        self.parts: list[list[Any]] = []  # [path, lines, bytes]
        self.handle: Any = None

    def add(self, line: bytes) -> None:
        current = self.parts[-1] if self.parts else None
        if current is None or current[1] + 1 > self.limits.max_lines or current[2] + len(line) > self.limits.max_bytes:
            self._close_handle()
            path = os.path.join(self.folder, f"part-{len(self.parts)}.jsonl") if self.folder else ""
            current = [path, 0, 0]
            self.parts.append(current)
            if path:
                self.handle = open(path, "wb")  # noqa: SIM115 - closed on the next part, in close() or remove()
        if self.handle is not None:
            self.handle.write(line)
        current[1] += 1
        current[2] += len(line)

    def _close_handle(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def close(self) -> list[list[Any]]:
        self._close_handle()
        return self.parts

    def remove(self) -> None:
        self._close_handle()
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)


def _cache_only(plan: Plan) -> Hooks:
    """The response cache's hooks alone: the request pass looks answers up, and observes nothing."""
    return open_hooks(tuple(f for f in plan.hooks if isinstance(f, CacheFactory)))


def request_partition(
    plan: Plan, inputs: Inputs, limits: FileLimits, upload_as: str | None
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The ``mapInArrow`` function of the request pass: one record per partition (its key, first id, the sum
    of its ids, lines, bytes) or, with ``upload_as`` (a name prefix), one per uploaded file (its ``file_id``)."""

    def partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        task, hooks = plan.operation.for_task(), _cache_only(plan)
        lines = LineIds(plan)
        ids: set[str] = set()
        first, rows, digest = "", 0, 0
        parts = JsonlParts(limits, write=upload_as is not None)
        try:
            for batch in batches:
                items = inputs.items(batch)
                rows += len(items)
                for unit in task.plan(items, RowResults(len(items))):
                    custom_id, line = lines.line(unit)
                    first = first or custom_id
                    # every request weighted by its rows: the sum is the same however the rows are split
                    digest += int(custom_id[2 : 2 + _ID_BITS // 4], 16) * len(unit.rows)
                    if custom_id in ids:
                        continue
                    ids.add(custom_id)
                    if len(line) <= limits.max_bytes and hooks.lookup(unit) is None:
                        parts.add(line)  # (a line over the limit is that row's invalid_input)
            files = parts.close()
            key = hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest() if ids else ""
            digest %= 1 << _ID_BITS
            records = [(None, sum(p[1] for p in files), sum(p[2] for p in files))]
            if upload_as is not None and files:
                api = BatchApi(plan.config)
                try:
                    uploaded = [api.upload(f"{upload_as}-{key[:16]}-{i}.jsonl", p[0]) for i, p in enumerate(files)]
                finally:
                    api.close()
                records = [(u["id"], p[1], p[2]) for u, p in zip(uploaded, files, strict=True)]
        finally:
            parts.remove()
            hooks.close()
        values = [(key, first, f"{digest:x}", count, size, file_id, rows) for file_id, count, size in records]
        columns = list(zip(*values, strict=True))
        arrays = [array(list(column), kind) for column, (_, kind) in zip(columns, RECORD_FIELDS, strict=True)]
        yield pa.RecordBatch.from_arrays(arrays, names=[name for name, _ in RECORD_FIELDS])

    return partition


def answer_partition(
    plan: Plan, inputs: Inputs, job: JobFiles
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The ``mapInArrow`` function of the answer pass: input batches in, the same rows plus results out."""
    deployment = plan.config.deployment

    def partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        task, hooks = plan.operation.for_task(), open_hooks(plan.hooks)
        lines = LineIds(plan)
        answers: Answers | None = None
        answered: set[str] = set()
        rows_before = 0
        try:
            for batch in batches:
                items = inputs.items(batch)
                results = RowResults(len(items))
                for unit in task.plan(items, results):
                    custom_id, line = lines.line(unit)
                    if answers is None:
                        answers = Answers(plan, job, custom_id)
                    if len(line) > job.limits.max_bytes:
                        results.fail(unit.rows, too_large(line, job.limits))
                        continue
                    _resolve(unit, custom_id, answers, task, hooks, answered, deployment)
                results.mask_errors(functools.partial(clean_message, plan.config))
                if plan.config.fail_on_error and results.first_error() is not None:
                    failed = sum(error is not None for error in results.errors)
                    raise RequestFailedError(results.first_error(), failed_rows=failed, rows_before=rows_before)  # type: ignore[arg-type]
                rows_before += len(items)
                columns = list(batch.columns) + plan.encode(results)
                yield pa.RecordBatch.from_arrays(columns, names=batch.schema.names + plan.names)
        finally:
            if answers is not None:
                answers.close()
            hooks.close()

    return partition


def _resolve(
    unit: Unit, custom_id: str, answers: Answers, task: Any, hooks: Hooks, answered: set[str], deployment: str
) -> None:
    """Put a unit's answer on its rows: from the cache, else from its line, else the missing line's error."""
    results, rows = unit.results, unit.rows
    cached = hooks.lookup(unit)
    if cached is not None:
        _accept(unit, cached, None, task)
        results.charge_nothing(rows)  # a stored answer costs nothing this time
        results.mark_source(rows, CACHED)
        return
    line = answers.get(custom_id)
    if line is None:
        results.fail(rows, answers.missing)
        return
    response = line.get("response")
    if line.get(CONFLICT):
        message = "the batch output holds two different answers for this request; neither is trusted"
        results.fail(rows, RowError(200, ErrorCode.MALFORMED_RESPONSE, message))
        return
    if not isinstance(response, dict):  # a line the service could not process
        found = line.get("error")
        error: dict[str, Any] = found if isinstance(found, dict) else {}
        code = str(error.get("code") or ErrorCode.BATCH_FAILED.value)
        results.fail(rows, RowError(None, code, str(error.get("message") or "no response")[:MAX_MESSAGE_CHARS]))
        return
    status, body, request_id = response.get("status_code"), response.get("body"), response.get("request_id")
    if not isinstance(status, int) or isinstance(status, bool):
        message = f"the batch output line's status_code is {str(status)[:40]!r}, not a number"
        results.fail(rows, RowError(None, ErrorCode.MALFORMED_RESPONSE, message))
        return
    repeat = custom_id in answered
    answered.add(custom_id)
    if not repeat:  # a request is billed once, whatever the rows it answers
        hooks.attempt(unit, Outcome(status, body=body if status == 200 else None, request_id=request_id), 0.0)
    if status != 200:
        refused = error_from_response(status, json.dumps(body) if body is not None else "")
        results.fail(rows, refused.with_attempts(1, request_id))
        return
    _accept(unit, body, request_id, task)
    if repeat:
        results.charge_nothing(rows)
    results.mark_source(rows, deployment)
    if not repeat:
        hooks.store(unit, body)


def _accept(unit: Unit, body: Any, request_id: str | None, task: Any) -> None:
    """The operation's own reading of a 200 body; what would be asked again online is an error here."""
    results = unit.results
    try:
        follow_ups = task.accept(unit, body, request_id)
    except Exception as exc:  # MalformedResponseError, or any surprise in a line: the row's error, not the job's
        message = str(exc) if isinstance(exc, MalformedResponseError) else f"{type(exc).__name__}: {exc}"
        results.fail(results.unresolved(unit.rows), RowError(200, ErrorCode.MALFORMED_RESPONSE, message[:500]))
        return
    for follow_up in follow_ups or ():
        message = f"the answer does not fit the output schema; {NO_REASK}"
        follow_up.results.fail(follow_up.rows, RowError(200, ErrorCode.INVALID_OUTPUT, message, 1, request_id))
