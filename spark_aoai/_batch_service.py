"""Creating a job's batches on the service without ever creating one twice.

Creating a batch is not idempotent: an answer lost to a timeout or a 5xx may hide a batch that exists and bills.
So a creation is made once, and before any retry (and on a restarted driver that had begun creating) the
resource's batches are listed and a batch made from the same input file is adopted instead. A file is given
to a batch only once the service has processed it. A batch that failed for the enqueued-token quota
(``token_limit_exceeded``, nothing processed, nothing billed) is created again after a backoff.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from spark_aoai import _constants as C
from spark_aoai._batch_api import BatchApi, BatchApiError
from spark_aoai._contract import ErrorCode, RowError
from spark_aoai._retry import RETRYABLE_STATUS, retry_delay

QUOTA_CODE = "token_limit_exceeded"
QUOTA_BACKOFF_LONGEST = 1800.0


def batch_fields(batch: dict[str, Any]) -> dict[str, Any]:
    """What the manifest keeps of a batch object."""
    keep = ("id", "status", "output_file_id", "error_file_id", "request_counts", "errors", "input_file_id")
    return {name: batch.get(name) for name in keep}


def quota_failure(info: dict[str, Any]) -> bool:
    """Whether a file's batch failed for the enqueued-token quota (and may be submitted again)."""
    batch = info.get("batch") or {}
    errors = (batch.get("errors") or {}).get("data") or []
    return batch.get("status") == "failed" and any(isinstance(e, dict) and e.get("code") == QUOTA_CODE for e in errors)


class Creator:
    """Creates the batches of a manifest's files, saving the manifest after each."""

    def __init__(
        self, api: BatchApi, manifest: dict[str, Any], save: Callable[[], None], endpoint: str, backoff: float = 60.0
    ) -> None:
        self.api, self.manifest, self.save, self.endpoint = api, manifest, save, endpoint
        self.backoff = backoff  # the first wait before a batch refused for quota is created again (then doubled)
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
                info = self.manifest["files"][file_id]
                if info.get("batch"):
                    continue
                try:
                    info["batch"] = batch_fields(self._create(file_id))
                    info.pop("error", None)
                except BatchApiError as exc:  # its rows become batch_failed; a later run tries again
                    info["error"] = str(exc)
                self.save()
        finally:
            self.api.close()

    def resubmit_after_quota(self, info: dict[str, Any]) -> None:
        """A batch failed for ``token_limit_exceeded``: once its backoff has passed, create it again."""
        if not quota_failure(info):
            return
        now = time.time()
        if "retry_at" not in info:
            tries = int(info.get("quota_failures", 0)) + 1
            info["quota_failures"] = tries
            info["retry_at"] = now + min(QUOTA_BACKOFF_LONGEST, self.backoff * 2 ** (tries - 1))
            self.save()
        if now < info["retry_at"]:
            return
        file_id = info["batch"]["input_file_id"]
        try:
            info["batch"] = batch_fields(self._create(file_id))
            info.pop("retry_at", None)
        except BatchApiError as exc:
            info["error"] = str(exc)
            info["retry_at"] = now + self.backoff
        self.save()

    def _create(self, file_id: str) -> dict[str, Any]:
        """The batch of ``file_id``: created once the file is processed, retried only after making sure no
        earlier attempt created it."""
        self._wait_processed(file_id)
        attempts = max(1, self.api.config.retry.max_attempts)
        for attempt in range(1, attempts + 1):
            try:
                return self.api.create(file_id, self.endpoint)
            except BatchApiError as exc:
                status = exc.error.status
                if (status is not None and status not in RETRYABLE_STATUS) or attempt == attempts:
                    raise
                time.sleep(retry_delay(attempt, None, self.api.config.retry, self.rng))
                self.existing = None  # the lost answer may have created it: look again
                found = self._adopt([file_id])
                if found:
                    return found[file_id]
        raise AssertionError("unreachable")

    def _adopt(self, files: list[str]) -> dict[str, dict[str, Any]]:
        """Record the batches the resource already has for ``files`` (the newest of each; a failed one is not
        adopted, it is what a new creation replaces); those adopted."""
        if self.existing is None:
            self.existing = {}
            for batch in self.api.list_batches():  # newest first
                self.existing.setdefault(str(batch.get("input_file_id")), batch)
        found = {f: self.existing[f] for f in files if f in self.existing}
        for file_id, batch in found.items():
            if file_id in self.manifest["files"] and batch.get("status") != "failed":
                self.manifest["files"][file_id]["batch"] = batch_fields(batch)
        if found:
            self.save()
        return {f: b for f, b in found.items() if b.get("status") != "failed"}

    def _wait_processed(self, file_id: str) -> None:
        """Azure processes an upload before a batch may use it (``pending`` -> ``processed``)."""
        until, pause = time.time() + C.BATCH_FILE_READY_SECONDS, 0.5
        while True:
            status = self.api.file(file_id).get("status")
            if status in (None, "processed", "uploaded"):
                return
            if status == "error" or time.time() >= until:
                error = RowError(None, ErrorCode.BATCH_FAILED, f"file {file_id} is {status}, not processed")
                raise BatchApiError(f"the input file {file_id}", error)
            time.sleep(pause)
            pause = min(10.0, pause * 2)
