"""Creating a job's batches on the service without ever creating one twice.

Creating a batch is not idempotent: an answer lost to a timeout or a 5xx may hide a batch that exists and bills.
So a creation is made once, and after any failure that may hide one (and on a driver restarted while it was
creating) the resource's batches are listed and the newest batch made from the same input file is adopted
instead. A file is given to a batch only once the service has processed it. A creation that failed in a way
that may pass (network, 429, 5xx), and a batch that failed for the enqueued-token quota
(``token_limit_exceeded``: nothing processed, nothing billed), are tried again with backoff until the job's
deadline; a refusal (another 4xx) is final for this run.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Iterator
from typing import Any

from spark_aoai._batch.api import BatchApi, BatchApiError
from spark_aoai._client.retry import RETRYABLE_STATUS, retry_delay
from spark_aoai._core import constants as C
from spark_aoai._core.contract import ErrorCode, RowError

QUOTA_CODE = "token_limit_exceeded"


def batch_fields(batch: dict[str, Any]) -> dict[str, Any]:
    """What the manifest keeps of a batch object."""
    keep = ("id", "status", "output_file_id", "error_file_id", "request_counts", "errors", "input_file_id")
    return {name: batch.get(name) for name in keep}


def batch_errors(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``errors.data`` entries (``{code, message, line}``) of a batch object."""
    errors = (batch.get("errors") or {}).get("data") or []
    return [error for error in errors if isinstance(error, dict)]


def error_text(error: dict[str, Any]) -> str:
    """One ``errors.data`` entry as a row's message reads it: ``code: message``."""
    return f"{error.get('code')}: {error.get('message')}"


def quota_failure(info: dict[str, Any]) -> bool:
    """Whether a file's batch failed for the enqueued-token quota (and may be submitted again)."""
    batch = info.get("batch") or {}
    return batch.get("status") == "failed" and any(e.get("code") == QUOTA_CODE for e in batch_errors(batch))


def pauses(first: float, longest: float) -> Iterator[float]:
    """Waits between polls: ``first``, doubling up to ``longest``."""
    pause = min(first, longest)
    while True:
        yield pause
        pause = min(longest, pause * 2)


def may_pass(status: int | None) -> bool:
    """A failure that another try may not meet (no answer, a 429, a 5xx): it may also hide a created batch."""
    return status is None or status in RETRYABLE_STATUS


def to_retry(info: dict[str, Any]) -> bool:
    """A file to create a batch for again: not created for a failure that may pass, or refused for quota."""
    if quota_failure(info):
        return True
    return not info.get("batch") and "error" in info and may_pass(info.get("error_status"))


class Creator:
    """Creates the batches of a manifest's files, saving the manifest after each step."""

    def __init__(
        self, api: BatchApi, manifest: dict[str, Any], save: Callable[[], None], endpoint: str, backoff: float = 60.0
    ) -> None:
        self.api, self.manifest, self.save, self.endpoint = api, manifest, save, endpoint
        self.backoff = backoff  # the first wait before a failed creation is tried again (then doubled)
        self.existing: dict[str, dict[str, Any]] | None = None
        self.rng = random.Random()

    def create_missing(self) -> None:
        """A batch for every file that has none (a creation that failed before is tried again)."""
        waiting = [file_id for file_id, info in self.manifest["files"].items() if not info.get("batch")]
        try:
            if waiting and self.manifest.get("creating"):  # an earlier driver may have created some
                self._adopt(waiting)
            elif waiting:
                self.manifest["creating"] = True  # saved before the first creation: a restart looks first
                self.save()
            for file_id in waiting:
                if not self.manifest["files"][file_id].get("batch"):
                    self._create_for(file_id)
        finally:
            self.api.close()

    def retry_due(self, file_id: str, deadline: float) -> None:
        """Try a file's creation again once its backoff has passed (and before ``deadline``)."""
        info = self.manifest["files"][file_id]
        if not to_retry(info):
            return
        now = time.time()
        if "retry_at" not in info:
            tries = info["tries"] = int(info.get("tries", 0)) + 1
            info["retry_at"] = now + min(C.BATCH_LONGEST_BACKOFF_SECONDS, self.backoff * 2 ** (tries - 1))
            self.save()
        if info["retry_at"] >= deadline:
            info.pop("retry_at")
            info["gave_up"] = True  # the deadline comes first: the rows keep the last error
            self.save()
            return
        if now >= info["retry_at"]:
            info.pop("retry_at")
            self._create_for(file_id)

    def _create_for(self, file_id: str) -> None:
        """Create (or adopt) the batch of one file and record the outcome."""
        info = self.manifest["files"][file_id]
        refused = [e for e in batch_errors(info["batch"]) if e.get("code") == QUOTA_CODE] if quota_failure(info) else []
        try:
            info["batch"] = batch_fields(self._create(file_id, (info.get("batch") or {}).get("id")))
            if refused:  # a resubmission: the refusal stays on record, so a row that times out later says why
                info["refusals"] = int(info.get("refusals", 0)) + 1
                info["refused"] = error_text(refused[0])
            info.pop("error", None)
            info.pop("error_status", None)
        except BatchApiError as exc:  # its rows become batch_failed unless a later try succeeds
            info["error"], info["error_status"] = str(exc), exc.error.status
        self.save()

    def _create(self, file_id: str, replacing: str | None) -> dict[str, Any]:
        """The batch of ``file_id``, created once the file is processed. Every creation after the file's first
        (in this run or an earlier one: ``asked`` is saved before it is sent) comes after a listing that did not
        find one; a listing that fails raises, so the creation waits for the next try (``retry_due``), never
        blind."""
        self._wait_processed(file_id)
        info = self.manifest["files"][file_id]
        attempts = max(1, self.api.config.retry.max_attempts)
        for attempt in range(1, attempts + 1):
            if info.get("asked") or info.get("resubmitting"):  # an earlier creation may have made one
                self.existing = None
                found = self._adopt([file_id], replacing)
                if found:
                    return found[file_id]
            else:
                info["asked"] = True
                self.save()
            try:
                return self.api.create(file_id, self.endpoint)
            except BatchApiError as exc:
                if not may_pass(exc.error.status):
                    raise
                if attempt == attempts:  # look once more: the lost answer may have created it
                    self.existing = None
                    found = self._adopt([file_id], replacing)
                    if found:
                        return found[file_id]
                    raise
                time.sleep(retry_delay(attempt, None, self.api.config.retry, self.rng))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _adopt(self, files: list[str], replacing: str | None = None) -> dict[str, dict[str, Any]]:
        """Record the batch the resource has for each of ``files`` (its newest, unless that is the failed
        ``replacing`` one or any failed one); those adopted."""
        if self.existing is None:
            self.existing = {}
            for batch in self.api.list_batches():
                file_id = str(batch.get("input_file_id"))
                known = self.existing.get(file_id)
                if known is None or float(batch.get("created_at") or 0) > float(known.get("created_at") or 0):
                    self.existing[file_id] = batch
        found = {
            f: b for f in files
            if (b := self.existing.get(f)) is not None and b.get("status") != "failed" and b.get("id") != replacing
        }  # fmt: skip
        for file_id, batch in found.items():
            if file_id in self.manifest["files"]:
                self.manifest["files"][file_id]["batch"] = batch_fields(batch)
        if found:
            self.save()
        return found

    def _wait_processed(self, file_id: str) -> None:
        """Azure processes an upload before a batch may use it (``pending`` -> ``processed``)."""
        until, waits = time.time() + C.BATCH_FILE_READY_SECONDS, pauses(0.5, 10.0)
        while True:
            status = self.api.file(file_id).get("status")
            if status in (None, "processed", "uploaded"):  # "uploaded": OpenAI's word for ready
                return
            if status == "error" or time.time() >= until:
                error = RowError(None, ErrorCode.BATCH_FAILED, f"file {file_id} is {status}, not processed")
                raise BatchApiError(f"the input file {file_id}", error)
            time.sleep(next(waits))


def remove_orphans(api: BatchApi, prefix: str, keep: Collection[str]) -> int:
    """Delete the service's ``purpose=batch`` files named ``{prefix}-...`` that are not in ``keep``: uploads of
    this job whose answer was lost (the retry uploaded the file again) or made by an upload pass that did not
    finish (a failed task, a killed driver). Returns how many were deleted."""
    found = [f for f in api.list_files() if str(f.get("filename") or "").startswith(f"{prefix}-")]
    return sum(api.delete(str(f["id"])) for f in found if isinstance(f.get("id"), str) and f["id"] not in keep)
