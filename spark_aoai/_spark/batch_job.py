"""Batch mode on the driver: the job's manifest, its batches, polling, and the answer pass.

A job is one stage over one input. Its steps, each resumable from the manifest in ``batchDir``:

1. **Request pass** (executors): every partition plans its rows exactly as online mode would; the input's
   fingerprint is a hash of the route, deployment, endpoint and the sum of every request's id (so neither the
   order of the rows nor their partitioning changes it). A manifest under that fingerprint means the job was
   submitted already: nothing is uploaded again.
2. **Upload** (executors): the same pass writes each partition's lines to JSONL files within the per-file limits
   and uploads them (``purpose=batch``); the driver records the file ids (and refuses an input that changed
   between the two reads). The manifest is saved before the pass (a pass that did not finish is run again), and
   this job's uploads it does not hold (a lost answer sent again, a pass cut short) are deleted after it.
3. **Batches** (driver, ``_batch_service``): one per file, once the file is processed; the manifest is saved
   after each; a batch created but not saved (a driver killed in between, a lost answer) is found on the
   service and adopted, never created twice; a creation that failed in a way that may pass is tried again.
4. **Polling** (driver) with backoff up to ``batchPollSeconds``, a progress line from ``request_counts``; a batch
   that failed for the enqueued-token quota (``token_limit_exceeded``) is submitted again with backoff; after
   ``batchTimeoutHours`` the batches still running are cancelled and their unanswered rows are ``batch_expired``.
5. **Answer pass** (executors): each partition downloads its batches' output and error files and joins each line
   back to its rows by ``custom_id`` (``_batch_lines``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

from pyspark.sql import DataFrame

from spark_aoai._batch.api import TERMINAL, BatchApi, BatchApiError, line_url
from spark_aoai._batch.lines import RECORD_DDL, answer_partition, request_partition
from spark_aoai._batch.results import BatchOutcome, FileLimits, JobFiles
from spark_aoai._batch.service import (
    Creator,
    batch_errors,
    batch_fields,
    error_text,
    may_pass,
    pauses,
    remove_orphans,
    to_retry,
)
from spark_aoai._core import constants as C
from spark_aoai._features.cache import check_directory, open_files
from spark_aoai._spark.stage import AzureOpenAIStage, Prepared
from spark_aoai._spark.usage import progress_wanted
from spark_aoai.exceptions import ConfigurationError

BATCH_FOLDER = "spark_aoai-batches-v1"
BATCH_ROUTES = ("chat/completions", "embeddings", "responses")
# Params that only make sense online: ignored in batch mode, with one warning when set.
ONLINE_ONLY = (
    "concurrency", "maxRequestsPerMinute", "maxTokensPerMinute", "concurrentTasks", "deadlineSeconds",
    "rowsPerRequest", "maxPackTokens", "maxTotalTokens", "maxCost", "deployments",
)  # fmt: skip


class BatchJob:
    """One stage over one input in batch mode: ``submit``, ``status``, ``wait``, ``collect`` (``run`` = all)."""

    def __init__(
        self,
        stage: AzureOpenAIStage,
        dataset: DataFrame,
        prepare: Callable[[DataFrame], Prepared],
        finish: Callable[[Prepared, DataFrame], DataFrame],
    ) -> None:
        """``stage``'s Params set the job; ``prepare`` plans it over ``dataset`` and ``finish`` is what the stage
        does with an output (its column names, the observers): the stage's own steps, handed over by it."""
        if dataset.isStreaming:
            raise ConfigurationError("mode='batch' takes a static DataFrame; a stream is answered online")
        directory = stage._get(stage.batchDir)
        if not directory:
            raise ConfigurationError("mode='batch' needs batchDir: a directory for the job's manifest")
        hours, poll = stage.getOrDefault(stage.batchTimeoutHours), stage.getOrDefault(stage.batchPollSeconds)
        if not hours > 0 or not poll > 0:
            raise ConfigurationError(f"batchTimeoutHours and batchPollSeconds must be positive, got {hours}, {poll}")
        self.limits = FileLimits(
            stage.getOrDefault(stage.batchMaxLinesPerFile), stage.getOrDefault(stage.batchMaxBytesPerFile)
        )
        if self.limits.max_lines < 1 or self.limits.max_bytes < 1:
            raise ConfigurationError("batchMaxLinesPerFile and batchMaxBytesPerFile must be at least 1")
        self.stage, self.hours, self.longest_poll, self.finish = stage, hours, poll, finish
        self.prepared = prepare(dataset)
        self.plan = self.prepared.plan
        route = self.plan.operation.route
        if route.path not in BATCH_ROUTES:
            raise ConfigurationError(
                f"mode='batch' serves chat completions, the Responses API and embeddings, not {route.path}"
            )
        check_directory(directory, BATCH_FOLDER, "batchDir")
        _warn_online_only(stage)
        self.config = self.plan.config
        self.store = open_files(directory, BATCH_FOLDER)
        self.endpoint = line_url(self.config, route)
        self.manifest: dict[str, Any] = {}
        self.fingerprint = ""

    # -- the manifest ---------------------------------------------------------------------------------------

    def _name(self) -> str:
        return f"{self.fingerprint}.json"

    def _save(self) -> None:
        self.store.write(self._name(), json.dumps(self.manifest, indent=1).encode("utf-8"))

    # -- the steps ------------------------------------------------------------------------------------------

    def _request_pass(self, upload_as: str | None) -> list[Any]:
        function = request_partition(self.plan, self.prepared.inputs, self.limits, upload_as)
        return self.prepared.renamed.mapInArrow(function, RECORD_DDL).collect()

    def _fingerprint(self, records: list[Any]) -> str:
        partitions = {(r["key"], r["digest"]) for r in records}  # the upload pass has a record per file
        digest = sum(int(d, 16) for _, d in partitions) % (1 << 160)
        head = f"{self.endpoint}\n{self.config.deployment}\n{self.config.endpoint.base_url}\n{digest:x}"
        return hashlib.sha256(head.encode()).hexdigest()[:32]

    def submit(self) -> BatchJob:
        """Upload the requests and create the batches, unless the manifest says it was done; returns at once."""
        planned = self._request_pass(None)
        self.fingerprint = self._fingerprint(planned)
        stored = self.store.read(self._name())
        self.manifest = json.loads(stored) if stored is not None else {}
        if stored is None or self.manifest.get("uploading"):  # none yet, or an upload pass that did not finish
            self.manifest = {
                "version": 1, "fingerprint": self.fingerprint, "deployment": self.config.deployment,
                "endpoint": self.endpoint, "created": time.time(), "partitions": {}, "files": {},
                "uploading": True,  # saved before any upload: a rerun uploads again and removes what this left
            }  # fmt: skip
            self._save()
            if sum(r["lines"] for r in planned):
                _warn_file_count(planned, self.limits)
                self._upload()
            self.manifest.pop("uploading")
            self._save()
            self._remove_orphans()
        Creator(BatchApi(self.config), self.manifest, self._save, self.endpoint).create_missing()
        return self

    def _upload(self) -> None:
        try:
            records = self._request_pass(self._upload_prefix())
        except Exception as exc:  # the executors' BatchApiError arrives wrapped by Spark
            cause = _cause(exc)
            if cause is None:
                raise RuntimeError("batch mode: uploading the requests failed") from exc
            raise RuntimeError(f"batch mode: uploading the requests failed: {cause}") from None
        if self._fingerprint(records) != self.fingerprint:
            raise RuntimeError(
                "batch mode: the input changed between two reads of it (a nondeterministic UDF, a table written "
                "meanwhile?): cache or save it first, so that its rows and their answers can be joined"
            )
        for record in records:
            part = self.manifest["partitions"].setdefault(record["key"], {"first": record["first"], "files": []})
            if record["file_id"]:
                part["files"].append(record["file_id"])
                self.manifest["files"][record["file_id"]] = {"lines": record["lines"], "bytes": record["bytes"]}

    def _upload_prefix(self) -> str:
        return f"spark_aoai-{self.fingerprint}"

    def _remove_orphans(self) -> int:
        """Delete this job's uploads the manifest does not hold (lost answers, a pass cut short); a failure
        only warns: ``delete_files()`` and the next run try again."""
        api = BatchApi(self.config)
        try:
            return remove_orphans(api, self._upload_prefix(), self.manifest["files"])
        except BatchApiError as exc:
            warnings.warn(f"spark_aoai: batch mode could not remove stray uploads: {exc}", stacklevel=3)
            return 0
        finally:
            api.close()

    def poll(self) -> dict[str, Any]:
        """Read every unfinished batch once, create again what is due (quota, a failure that may pass); the
        job's counts."""
        api = BatchApi(self.config)
        creator = Creator(api, self.manifest, self._save, self.endpoint, backoff=self.longest_poll)
        try:
            for file_id, info in self.manifest["files"].items():
                batch = info.get("batch")
                if batch and batch["status"] not in TERMINAL:
                    info["batch"] = batch_fields(api.get(batch["id"]))
                    self._save()
                if not info.get("gave_up"):
                    creator.retry_due(file_id, self._deadline())
        finally:
            api.close()
        return self.status(poll=False)

    def status(self, poll: bool = True) -> dict[str, Any]:
        """``{'batches', 'total', 'completed', 'failed', 'status': {status: batches}, 'done'}`` for the job."""
        if poll:
            return self.poll()
        counts = {"batches": 0, "total": 0, "completed": 0, "failed": 0}
        statuses: dict[str, int] = {}
        waiting = False  # a creation to try again before the deadline
        for info in self.manifest["files"].values():
            batch = info.get("batch")
            status = batch["status"] if batch else "not_created"
            statuses[status] = statuses.get(status, 0) + 1
            waiting = waiting or (to_retry(info) and not info.get("gave_up") and time.time() < self._deadline())
            counts["batches"] += 1
            requests = (batch or {}).get("request_counts") or {}
            counts["total"] += int(requests.get("total") or info["lines"])
            counts["completed"] += int(requests.get("completed") or 0)
            counts["failed"] += int(requests.get("failed") or 0)
        done = not waiting and all(s in (*TERMINAL, "not_created") for s in statuses)
        return {**counts, "status": statuses, "done": done, "fingerprint": self.fingerprint}

    def _deadline(self) -> float:
        return float(self.manifest["created"]) + self.hours * 3600.0

    def wait(self) -> None:
        """Poll until every batch has ended; after ``batchTimeoutHours`` cancel those still running."""
        waits = pauses(C.BATCH_FIRST_POLL_SECONDS, self.longest_poll)
        progress = progress_wanted(self.stage)
        while True:
            try:
                state = self.poll()
            except BatchApiError as exc:  # an outage longer than one call's retries: keep waiting
                if not may_pass(exc.error.status) or time.time() >= self._deadline():
                    raise
                time.sleep(next(waits))
                continue
            if progress:
                _show(self.config.deployment, state)
            if state["done"]:
                return
            if time.time() >= self._deadline():
                self._cancel_all()
                return
            time.sleep(min(next(waits), max(0.0, self._deadline() - time.time()) + 0.01))

    def _cancel_all(self) -> None:
        """The timeout: cancel what still runs and wait for it to end (what it answered is kept)."""
        api = BatchApi(self.config)
        try:
            for info in self.manifest["files"].values():
                batch = info.get("batch")
                if not batch or batch["status"] in TERMINAL:
                    continue
                info["timed_out"] = True
                try:
                    info["batch"] = batch_fields(api.cancel(batch["id"]))
                except BatchApiError:  # it ended meanwhile (409), or the service is away: read it again later
                    with contextlib.suppress(BatchApiError):
                        info["batch"] = batch_fields(api.get(batch["id"]))
                self._save()
        finally:
            api.close()
        until = time.time() + self.cancel_wait()
        waits = pauses(C.BATCH_FIRST_POLL_SECONDS, self.longest_poll)
        while time.time() < until:
            try:
                if self.status(poll=True)["done"]:
                    return
            except BatchApiError:
                pass
            time.sleep(max(0.0, min(next(waits), until - time.time())))

    def cancel_wait(self) -> float:
        """How long the timeout waits for cancelled batches to end: 1% of ``batchTimeoutHours``, from 10 s to
        10 minutes; a batch still ``cancelling`` then is left (its rows ``batch_expired``; a later
        ``transform`` reads what it answered once it has ended)."""
        share = C.BATCH_CANCEL_WAIT_SHARE * self.hours * 3600.0
        return min(C.BATCH_CANCEL_WAIT_SECONDS, max(C.BATCH_CANCEL_WAIT_MIN_SECONDS, share))

    def collect(self) -> DataFrame:
        """The output: the input's rows with the batches' answers (and the usual error values) joined back."""
        function = answer_partition(self.plan, self.prepared.inputs, self._job_files())
        out = self.prepared.renamed.mapInArrow(function, self.prepared.out_schema)
        return self.finish(self.prepared, out)

    def delete_files(self) -> int:
        """Delete the job's input, output and error files from the service (Azure keeps 500 per resource), once
        its answers are saved: the manifest remembers it, and a later join of this job gets ``batch_failed``
        rows saying so. This job's uploads the manifest does not hold (lost answers) go too. Returns how many
        files were deleted.

        >>> out = chat.transform(df); out.write.parquet(path); chat.submit(df).delete_files()  # doctest: +SKIP
        """
        if not self.status(poll=True)["done"]:
            raise ConfigurationError("delete_files(): the job's batches are still running (their inputs are needed)")
        api = BatchApi(self.config)
        deleted = 0
        try:
            for file_id, info in self.manifest["files"].items():
                batch = info.get("batch") or {}
                for name in (file_id, batch.get("output_file_id"), batch.get("error_file_id")):
                    deleted += bool(name) and api.delete(str(name))
            self.manifest["files_deleted"] = time.time()
            self._save()
        finally:
            api.close()
        return deleted + self._remove_orphans()

    def run(self) -> DataFrame:
        """``submit``, ``wait``, ``collect``: what ``transform`` does in batch mode."""
        self.submit()
        self.wait()
        return self.collect()

    def _job_files(self) -> JobFiles:
        index: dict[str, int] = {}
        outcomes: list[BatchOutcome] = []
        for file_id, info in self.manifest["files"].items():
            index[file_id] = len(outcomes)
            outcomes.append(_outcome(info))
        by_first: dict[str, tuple[int, ...]] = {}
        for part in self.manifest["partitions"].values():
            found = tuple(index[f] for f in part["files"] if f in index)
            by_first[part["first"]] = by_first.get(part["first"], ()) + found
        return JobFiles(by_first, tuple(outcomes), self.limits, bool(self.manifest.get("files_deleted")))


class BatchMethods:
    """Batch mode on a stage (mixed in before ``AzureOpenAIStage``): ``transform`` (submit, wait, join: a
    DataFrame) and ``submit`` (returns at once: a ``BatchJob`` with ``status()``, ``wait()``, ``collect()``,
    ``delete_files()``)."""

    def _transform(self, dataset: DataFrame) -> DataFrame:
        stage: Any = self
        if stage._batch_mode():
            return self._job(dataset).run()
        return super()._transform(dataset)  # type: ignore[misc]

    def _job(self, dataset: DataFrame) -> BatchJob:
        stage: Any = self
        return BatchJob(stage, dataset, stage._prepare, stage._finish)

    def submit(self, dataset: DataFrame) -> BatchJob:
        """Batch mode: upload ``dataset``'s requests and create the batches; returns at once with the job
        (``job.status()``). ``transform`` with the same input (a new driver, another day) joins the answers later.

        >>> job = chat.submit(df); job.status()                     # doctest: +SKIP
        {'batches': 2, 'total': 1000, 'completed': 0, 'failed': 0, 'status': {'in_progress': 2}}
        """
        self._require_batch_mode("submit")
        return self._job(dataset).submit()

    def _require_batch_mode(self, method: str) -> None:
        stage: Any = self
        if not stage._batch_mode():
            raise ConfigurationError(f"{method}() is for batch mode: set mode='batch' and batchDir=...")


def _outcome(info: dict[str, Any]) -> BatchOutcome:
    batch = info.get("batch")
    if not batch:
        return BatchOutcome("-", "failed", None, None, info.get("error") or "the batch could not be created")
    message = "; ".join(error_text(e) for e in batch_errors(batch)[:3])
    if info.get("refused") and batch["status"] != "completed":  # resubmitted after quota refusals (the last one's)
        earlier = f"submitted again after {info.get('refusals', 1)} refusal(s), the last: {info['refused']}"
        message = f"{message}; {earlier}" if message else earlier
    return BatchOutcome(
        batch["id"], batch["status"], batch.get("output_file_id"), batch.get("error_file_id"),
        message, bool(info.get("timed_out")),
    )  # fmt: skip


def _warn_online_only(stage: AzureOpenAIStage) -> None:
    ignored = [name for name in ONLINE_ONLY if stage.hasParam(name) and stage.isSet(stage.getParam(name))]
    if ignored:
        warnings.warn(f"spark_aoai: mode='batch' ignores {', '.join(ignored)} (online only)", stacklevel=5)


def _warn_file_count(records: list[Any], limits: FileLimits) -> None:
    files = sum(max(-(-r["lines"] // limits.max_lines), -(-r["bytes"] // limits.max_bytes)) for r in records)
    if files > C.BATCH_MAX_FILES:
        warnings.warn(
            f"spark_aoai: this batch job needs about {files} input files (one or more per partition), over "
            f"Azure's {C.BATCH_MAX_FILES} per resource: coalesce the input to fewer partitions", stacklevel=5,
        )  # fmt: skip


def _show(deployment: str, state: dict[str, Any]) -> None:
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(state["status"].items()))
    print(
        f"spark_aoai batch {deployment}: {state['batches']} batches ({statuses}), "
        f"{state['completed']:,}/{state['total']:,} requests done, {state['failed']:,} failed",
        file=sys.stderr,
        flush=True,
    )


def _cause(exc: BaseException) -> str | None:
    """The executor's ``BatchApiError`` message out of Spark's wrapping (its last line naming it), if any."""
    named = [line.split("BatchApiError:", 1)[-1].strip() for line in str(exc).splitlines() if "BatchApiError" in line]
    return named[-1][: C.MAX_MESSAGE_CHARS] if named else None
