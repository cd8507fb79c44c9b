"""Batch mode's results on the executors: what each batch left (``BatchOutcome``), which batches a partition
reads (``JobFiles``), and its output and error lines by ``custom_id`` (``Answers``). Free of pyspark."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from spark_aoai._batch.api import BatchApi, BatchApiError
from spark_aoai._core import bounded_json as untrusted_json
from spark_aoai._core.constants import MAX_MESSAGE_CHARS
from spark_aoai._core.contract import ErrorCode, RowError
from spark_aoai._engine.plan import Plan


@dataclass(frozen=True)
class FileLimits:
    """Azure's limits of one batch input file (``batchMaxLinesPerFile``, ``batchMaxBytesPerFile``)."""

    max_lines: int
    max_bytes: int


@dataclass(frozen=True)
class BatchOutcome:
    """What one batch left: its status, its output and error files, and why it ended (when not completed)."""

    batch_id: str
    status: str
    output_file_id: str | None
    error_file_id: str | None
    message: str = ""
    timed_out: bool = False

    def missing_error(self) -> RowError:
        """The error of a row whose request has no line in either file."""
        if self.timed_out or self.status == "expired":
            code, why = ErrorCode.BATCH_EXPIRED, "the batch expired (or batchTimeoutHours passed) before this request"
        elif self.status == "cancelled":
            code, why = ErrorCode.BATCH_CANCELLED, "the batch was cancelled before this request"
        elif self.status == "failed":
            code, why = ErrorCode.BATCH_FAILED, "the batch failed"
        else:
            code, why = ErrorCode.BATCH_FAILED, "the batch ended without a line for this request"
        message = f"{why} (batch {self.batch_id}, {self.status})" + (f": {self.message}" if self.message else "")
        return RowError(None, code, message[:MAX_MESSAGE_CHARS])


@dataclass(frozen=True)
class JobFiles:
    """Shipped with the answer pass: the batches of each partition (by its first id), and all of them."""

    by_first: dict[str, tuple[int, ...]]
    batches: tuple[BatchOutcome, ...]
    limits: FileLimits
    files_deleted: bool = False  # delete_files() ran: a missing result file is no surprise

    def of(self, first: str) -> list[BatchOutcome]:
        """The batches holding a partition's lines (by its first request); all of them when the partition is
        not known (the input was split differently than when it was submitted)."""
        found = self.by_first.get(first)
        return [self.batches[i] for i in found] if found is not None else list(self.batches)


_SEVERITY = {"failed": 3, "expired": 2, "cancelled": 1}
# marks a line whose custom_id came twice with different answers in one batch's output (an input file holds each
# custom_id once; the same request in two partitions' batches is answered twice, legitimately)
CONFLICT = "spark_aoai_conflict"


class Answers:
    """One partition's output and error lines by ``custom_id``, streamed into an index on local disk (SQLite)
    so a task holds none of the result files in memory. The partition's own batches are read first; a request
    not found there (partitions merged since the job was submitted) makes it read the job's other batches."""

    def __init__(self, plan: Plan, job: JobFiles, first: str) -> None:
        self.config, self.job = plan.config, job
        self.batches = list(job.batches)
        mine = job.of(first)
        self.others = [b for b in self.batches if b not in mine]
        worst = max(mine, key=lambda b: (b.timed_out, _SEVERITY.get(b.status, 0)), default=None)
        self.missing = (worst or BatchOutcome("-", "unknown", None, None)).missing_error()
        self.folder = tempfile.mkdtemp(prefix="spark_aoai_answers_")
        try:
            self.index = sqlite3.connect(os.path.join(self.folder, "lines.db"))
            self.index.execute(
                "create table lines (id text primary key, batch integer, ok integer, line blob, conflict integer)"
            )
            self._read(mine)
        except BaseException:
            self.close()
            raise

    def _read(self, batches: list[BatchOutcome]) -> None:
        api = BatchApi(self.config)
        try:
            for outcome in batches:
                position = self.batches.index(outcome)
                for file_id in (outcome.error_file_id, outcome.output_file_id):
                    if file_id:
                        self._add(position, api.lines(file_id))
            self.index.commit()
        except BatchApiError as exc:
            if exc.error.status != 404 and not self.job.files_deleted:
                raise  # a failure that may pass: the task fails, and Spark runs it again
            message = (
                f"the batch's results are gone ({exc}): deleted (delete_files, or the service's retention)? "
                "Delete the job's manifest to submit it again"
            )
            self.missing = RowError(exc.error.status, ErrorCode.BATCH_FAILED, message[:MAX_MESSAGE_CHARS])
        finally:
            api.close()

    def _add(self, position: int, lines: Iterator[bytes]) -> None:
        """Index the lines of one file; an answer (200) is never replaced by another batch's error line."""
        upsert = (
            "insert into lines values (?, ?, ?, ?, 0) on conflict(id) do update set batch = excluded.batch, "
            "ok = excluded.ok, line = excluded.line, "
            "conflict = lines.conflict or (lines.batch = excluded.batch and lines.ok = 1 and excluded.ok = 1 "
            "and lines.line != excluded.line) "
            "where excluded.ok >= lines.ok"
        )
        rows: list[tuple[str, int, int, bytes]] = []
        size = 0
        for raw in lines:
            try:
                line = untrusted_json.loads(raw)
                custom_id = line.get("custom_id")
                ok = int((line.get("response") or {}).get("status_code") == 200)
            except (ValueError, AttributeError):
                continue
            if isinstance(custom_id, str):
                rows.append((custom_id, position, ok, raw))
                size += len(raw)
            if size >= 16 * 2**20:  # write the index in slices of at most 16 MB of lines
                self.index.executemany(upsert, rows)
                rows, size = [], 0
        self.index.executemany(upsert, rows)

    def get(self, custom_id: str) -> dict[str, Any] | None:
        found = self.index.execute("select batch, line, conflict from lines where id = ?", (custom_id,)).fetchone()
        if found is None and self.others:  # not in this partition's batches: the input was split otherwise
            others, self.others = self.others, []
            self._read(others)
            return self.get(custom_id)
        if found is None:
            return None
        line: dict[str, Any] = untrusted_json.loads(found[1])
        if found[2]:  # two different answers for one request: neither is trusted
            return {**line, CONFLICT: True}
        return _timed_out(line, self.batches[found[0]])

    def close(self) -> None:
        index = getattr(self, "index", None)
        if index is not None:
            index.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _timed_out(line: dict[str, Any], outcome: BatchOutcome) -> dict[str, Any]:
    """A batch cancelled because ``batchTimeoutHours`` passed: its cancelled lines are expired ones."""
    error = line.get("error")
    cancelled = isinstance(error, dict) and error.get("code") == "batch_cancelled" and not line.get("response")
    if outcome.timed_out and cancelled:
        message = f"batchTimeoutHours passed before this request (batch {outcome.batch_id})"
        line["error"] = {**error, "code": ErrorCode.BATCH_EXPIRED.value, "message": message}  # type: ignore[dict-item]
    return line
