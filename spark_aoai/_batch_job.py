"""Batch mode on the driver: the job's manifest, its batches, polling, and the answer pass.

A job is one stage over one input. Its steps, each resumable from the manifest in ``batchDir``:

1. **Request pass** (executors): every partition plans its rows exactly as online mode would and hashes the
   requests' ids into a key; the input's fingerprint is the hash of those keys with the route, deployment and
   endpoint. A manifest under that fingerprint means the job was submitted already: nothing is uploaded again.
2. **Upload** (executors): the same pass writes each partition's lines to JSONL files within the per-file limits
   and uploads them (``purpose=batch``); the driver records the file ids.
3. **Batches** (driver): one per file, ``completion_window: 24h``; the manifest is saved after each, and a file
   whose batch exists on the service but is not in the manifest (a driver killed in between) is adopted, not
   submitted twice.
4. **Polling** (driver) with backoff up to ``batchPollSeconds``, a progress line from ``request_counts``; after
   ``batchTimeoutHours`` the batches still running are cancelled and their unanswered rows are ``batch_expired``.
5. **Answer pass** (executors): each partition downloads its batches' output and error files and joins each line
   back to its rows by ``custom_id`` (``_batch_lines``).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import warnings
from typing import Any

from pyspark.sql import DataFrame

from spark_aoai import _constants as C
from spark_aoai._batch_api import TERMINAL, BatchApi, BatchApiError, line_url
from spark_aoai._batch_lines import RECORD_DDL, BatchOutcome, FileLimits, JobFiles, answer_partition, request_partition
from spark_aoai._cache import open_files
from spark_aoai._stage import AzureOpenAIStage, Prepared
from spark_aoai.exceptions import ConfigurationError

BATCH_FOLDER = "spark_aoai-batches-v1"
BATCH_ROUTES = ("chat/completions", "embeddings", "responses")
MAX_FILES = 500  # Azure's input files per resource
# Params that only make sense online: ignored in batch mode, with one warning when set.
ONLINE_ONLY = (
    "concurrency", "maxRequestsPerMinute", "maxTokensPerMinute", "concurrentTasks", "deadlineSeconds",
    "rowsPerRequest", "maxPackTokens", "maxTotalTokens", "maxCost", "deployments",
)  # fmt: skip
_CANCEL_WAIT_SECONDS = 120.0


class BatchJob:
    """One stage over one input in batch mode: ``submit``, ``status``, ``wait``, ``collect`` (``run`` = all)."""

    def __init__(self, stage: AzureOpenAIStage, dataset: DataFrame) -> None:
        directory = stage.getOrDefault(stage.batchDir)
        if not directory:
            raise ConfigurationError("mode='batch' needs batchDir: a directory for the job's manifest")
        self.stage = stage
        self.prepared: Prepared = stage._prepare(dataset)
        self.plan = self.prepared.plan
        route = self.plan.operation.route
        if route.path not in BATCH_ROUTES:
            raise ConfigurationError(
                f"mode='batch' serves chat completions, the Responses API and embeddings, not {route.path}"
            )
        _warn_online_only(stage)
        self.config = self.plan.config
        self.limits = FileLimits(
            stage.getOrDefault(stage.batchMaxLinesPerFile), stage.getOrDefault(stage.batchMaxBytesPerFile)
        )
        if self.limits.max_lines < 1 or self.limits.max_bytes < 1:
            raise ConfigurationError("batchMaxLinesPerFile and batchMaxBytesPerFile must be at least 1")
        self.store = open_files(directory, BATCH_FOLDER)
        self.endpoint = line_url(self.config, route)
        self.manifest: dict[str, Any] | None = None
        self.fingerprint: str | None = None

    # -- the steps ------------------------------------------------------------------------------------------

    def _request_pass(self, upload_as: str | None) -> list[Any]:
        function = request_partition(self.plan, self.prepared.inputs, self.limits, upload_as)
        return self.prepared.renamed.mapInArrow(function, RECORD_DDL).collect()

    def _fingerprint(self) -> str:
        records = self._request_pass(None)
        digest = hashlib.sha256(f"{self.endpoint}\n{self.config.deployment}\n{self.config.endpoint.base_url}".encode())
        for key in sorted(r["key"] for r in records):
            digest.update(f"\n{key}".encode())
        self._lines = sum(r["lines"] for r in records)
        files = sum(-(-r["lines"] // self.limits.max_lines) for r in records)
        if files > MAX_FILES:
            warnings.warn(
                f"spark_aoai: this batch job needs about {files} input files (one or more per partition), over "
                f"Azure's {MAX_FILES} per resource: coalesce the input to fewer partitions", stacklevel=4,
            )  # fmt: skip
        return digest.hexdigest()[:32]

    def _name(self) -> str:
        return f"{self.fingerprint}.json"

    def _load(self) -> dict[str, Any] | None:
        data = self.store.read(self._name())
        return json.loads(data) if data else None

    def _save(self) -> None:
        self.store.write(self._name(), json.dumps(self.manifest, indent=1).encode("utf-8"))

    def submit(self) -> BatchJob:
        """Upload the requests and create the batches, unless the manifest says it was done; returns at once."""
        self.fingerprint = self._fingerprint()
        self.manifest = self._load()
        if self.manifest is None:
            self.manifest = {
                "version": 1, "fingerprint": self.fingerprint, "deployment": self.config.deployment,
                "endpoint": self.endpoint, "created": time.time(), "partitions": {}, "files": {},
            }  # fmt: skip
            if self._lines:
                self._upload()
            self._save()
        self._create_batches()
        return self

    def _upload(self) -> None:
        assert self.manifest is not None
        try:
            records = self._request_pass(f"spark_aoai-{self.fingerprint}")
        except Exception as exc:  # the executors' BatchApiError arrives wrapped by Spark
            raise RuntimeError(f"batch mode: uploading the requests failed: {_cause(exc)}") from None
        for record in records:
            part = self.manifest["partitions"].setdefault(record["key"], {"first": record["first"], "files": []})
            if record["file_id"]:
                part["files"].append(record["file_id"])
                self.manifest["files"][record["file_id"]] = {"lines": record["lines"], "bytes": record["bytes"]}

    def _create_batches(self) -> None:
        assert self.manifest is not None
        waiting = [f for f, info in self.manifest["files"].items() if not info.get("batch") and not info.get("error")]
        if not waiting:
            return
        api = BatchApi(self.config)
        try:
            existing = self._existing_batches(api, set(waiting))
            for file_id in waiting:
                info = self.manifest["files"][file_id]
                try:
                    batch = existing.get(file_id) or api.create(file_id, self.endpoint)
                except BatchApiError as exc:  # its rows become batch_failed; the other files go on
                    info["error"] = str(exc)
                else:
                    info["batch"] = _batch_fields(batch)
                self._save()
        finally:
            api.close()

    def _existing_batches(self, api: BatchApi, files: set[str]) -> dict[str, dict[str, Any]]:
        """Batches already created for ``files`` by a driver that died before saving them (looked up only
        when an earlier driver had begun creating batches, so a first run makes no extra call)."""
        assert self.manifest is not None
        if not self.manifest.get("creating"):
            self.manifest["creating"] = True
            self._save()
            return {}
        found: dict[str, dict[str, Any]] = {}
        for batch in api.list_batches():
            file_id = batch.get("input_file_id")
            if file_id in files and file_id not in found:
                found[file_id] = batch
        return found

    def poll(self) -> dict[str, Any]:
        """Read every unfinished batch once; the counts of the whole job."""
        assert self.manifest is not None
        api = BatchApi(self.config)
        changed = False
        try:
            for info in self.manifest["files"].values():
                batch = info.get("batch")
                if batch and batch["status"] not in TERMINAL:
                    info["batch"] = _batch_fields(api.get(batch["id"]))
                    changed = True
        finally:
            api.close()
        if changed:
            self._save()
        return self.status(poll=False)

    def status(self, poll: bool = True) -> dict[str, Any]:
        """``{'batches', 'total', 'completed', 'failed', 'status': {status: batches}, 'done'}`` for the job."""
        if poll:
            return self.poll()
        assert self.manifest is not None
        counts = {"batches": 0, "total": 0, "completed": 0, "failed": 0}
        statuses: dict[str, int] = {}
        for info in self.manifest["files"].values():
            batch = info.get("batch")
            status = batch["status"] if batch else "failed"
            statuses[status] = statuses.get(status, 0) + 1
            counts["batches"] += 1
            requests = (batch or {}).get("request_counts") or {}
            counts["total"] += int(requests.get("total") or info["lines"])
            counts["completed"] += int(requests.get("completed") or 0)
            counts["failed"] += int(requests.get("failed") or 0)
        done = all(s in TERMINAL for s in statuses)
        return {**counts, "status": statuses, "done": done, "fingerprint": self.fingerprint}

    def wait(self) -> None:
        """Poll until every batch has ended; after ``batchTimeoutHours`` cancel those still running."""
        assert self.manifest is not None
        hours = self.stage.getOrDefault(self.stage.batchTimeoutHours)
        longest = max(0.05, self.stage.getOrDefault(self.stage.batchPollSeconds))
        deadline = self.manifest["created"] + hours * 3600.0
        pause = min(C.BATCH_FIRST_POLL_SECONDS, longest)
        progress = _progress_wanted(self.stage)
        while True:
            state = self.poll()
            if progress:
                _show(self.config.deployment, state)
            if state["done"]:
                return
            if time.time() >= deadline:
                self._cancel_all()
                return
            time.sleep(min(pause, max(0.0, deadline - time.time()) + 0.01))
            pause = min(longest, pause * 2)

    def _cancel_all(self) -> None:
        """The timeout: cancel what still runs, wait (briefly) for it to end, and remember why it ended."""
        assert self.manifest is not None
        api = BatchApi(self.config)
        try:
            running = [
                i for i in self.manifest["files"].values() if i.get("batch") and i["batch"]["status"] not in TERMINAL
            ]
            for info in running:
                info["timed_out"] = True
                try:
                    info["batch"] = _batch_fields(api.cancel(info["batch"]["id"]))
                except BatchApiError as exc:
                    info["error"] = str(exc)
            self._save()
            until = time.time() + _CANCEL_WAIT_SECONDS
            while time.time() < until and not self.status(poll=True)["done"]:
                time.sleep(1.0)
        finally:
            api.close()

    def collect(self) -> DataFrame:
        """The output: the input's rows with the batches' answers (and the usual error values) joined back."""
        assert self.manifest is not None
        function = answer_partition(self.plan, self.prepared.inputs, self._job_files())
        out = self.prepared.renamed.mapInArrow(function, self.prepared.out_schema)
        return self.stage._finish(self.prepared, out)

    def run(self) -> DataFrame:
        self.submit()
        self.wait()
        return self.collect()

    def _job_files(self) -> JobFiles:
        assert self.manifest is not None
        index: dict[str, int] = {}
        outcomes: list[BatchOutcome] = []
        for file_id, info in self.manifest["files"].items():
            index[file_id] = len(outcomes)
            outcomes.append(_outcome(info))
        by_first: dict[str, tuple[int, ...]] = {}
        for part in self.manifest["partitions"].values():
            found = tuple(index[f] for f in part["files"] if f in index)
            by_first[part["first"]] = by_first.get(part["first"], ()) + found
        return JobFiles(by_first, tuple(outcomes))


def _batch_fields(batch: dict[str, Any]) -> dict[str, Any]:
    keep = ("id", "status", "output_file_id", "error_file_id", "request_counts", "errors", "input_file_id")
    return {name: batch.get(name) for name in keep}


def _outcome(info: dict[str, Any]) -> BatchOutcome:
    batch = info.get("batch")
    if not batch:
        return BatchOutcome("-", "failed", None, None, info.get("error") or "the batch could not be created")
    errors = (batch.get("errors") or {}).get("data") or []
    message = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors[:3] if isinstance(e, dict))
    return BatchOutcome(
        batch["id"], batch["status"], batch.get("output_file_id"), batch.get("error_file_id"),
        message, bool(info.get("timed_out")),
    )  # fmt: skip


def _warn_online_only(stage: AzureOpenAIStage) -> None:
    ignored = [name for name in ONLINE_ONLY if stage.hasParam(name) and stage.isSet(stage.getParam(name))]
    if ignored:
        warnings.warn(f"spark_aoai: mode='batch' ignores {', '.join(ignored)} (online only)", stacklevel=4)


def _progress_wanted(stage: AzureOpenAIStage) -> bool:
    if not stage.hasParam("progress"):
        return False
    from spark_aoai._progress import interactive

    wanted = stage._get(stage.getParam("progress"))
    return bool(wanted or (wanted is None and interactive()))


def _show(deployment: str, state: dict[str, Any]) -> None:
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(state["status"].items()))
    print(
        f"spark_aoai batch {deployment}: {state['batches']} batches ({statuses}), "
        f"{state['completed']:,}/{state['total']:,} requests done, {state['failed']:,} failed",
        file=sys.stderr,
        flush=True,
    )


def _cause(exc: BaseException) -> str:
    """The executor's error message out of Spark's wrapping (the last line naming BatchApiError)."""
    text = str(exc)
    lines = [line for line in text.splitlines() if "BatchApiError" in line]
    return (lines[-1].split("BatchApiError:", 1)[-1].strip() if lines else text.splitlines()[0] if text else repr(exc))[
        : C.MAX_MESSAGE_CHARS
    ]
