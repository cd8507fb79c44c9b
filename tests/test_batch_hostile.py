"""Batch mode under a hostile Files/Batch service (issue #24, points 1, 5 and 10), over real HTTP and, where a
job runs, a local Spark: creation answers lost while listing fails (each batch created once), listings that
ignore ``after``, polls and downloads held unanswered, cancels that fail or never end (each wait within the
bound the README states), uploads left behind by lost answers or a failed upload pass (removed), and
``ai_similarity`` with a null side (nothing sent for the row)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from pyspark.sql import functions as F

from spark_aoai import ChatCompletion, ai
from spark_aoai._batch.api import BatchApi, BatchApiError
from spark_aoai._batch.service import Creator
from spark_aoai._client.config import Limits, resolve_client_config
from spark_aoai._client.retry import RetryPolicy
from spark_aoai.emulator import BatchSettings, Emulator

KEY = "sk-hostile-batch-0123456789"
HOLD = 40.0  # how long the emulator holds a call: every bound tested here is far below it


def _config(endpoint: str, attempts: int = 2, read_timeout: float = 300.0):
    return resolve_client_config(
        deployment="gpt-4o", endpoint=endpoint, api_version=None, api_style="auto", api_key=KEY, aad_token=None,
        token_provider=None, headers=None, retry=RetryPolicy(max_attempts=attempts, base_delay=0.01),
        limits=Limits(read_timeout=read_timeout), verify=True, fail_on_error=False,
    )  # fmt: skip


def _upload(api: BatchApi, tmp_path: Path, rows: int = 20) -> str:
    path = tmp_path / "in.jsonl"
    line = '{"custom_id": "r-%d", "method": "POST", "url": "/chat/completions", "body": {"model": "gpt-4o", ' \
           '"messages": [{"role": "user", "content": "q %d"}]}}\n'  # fmt: skip
    path.write_text("".join(line % (i, i) for i in range(rows)))
    return str(api.upload("in.jsonl", str(path))["id"])


def _later(seconds: float, action: Any) -> threading.Timer:
    timer = threading.Timer(seconds, action)
    timer.daemon = True
    timer.start()
    return timer


def _questions(spark, rows: int = 60, partitions: int = 2):
    return spark.range(0, rows, 1, partitions).select("id", F.concat(F.lit("question "), F.col("id")).alias("prompt"))


def _stage(endpoint: str, batch_dir: Path, **params: Any) -> ChatCompletion:
    given = {"deploymentName": "gpt-4o", "promptCol": "prompt", "endpoint": endpoint, "apiKey": "k",
             "mode": "batch", "batchDir": str(batch_dir), "batchPollSeconds": 0.2, **params}  # fmt: skip
    return ChatCompletion(**given)


def _each_row_once(rows: list[Any], count: int) -> None:
    assert sorted(r.id for r in rows) == list(range(count))


# -- 1. a batch created twice for one file ----------------------------------------------------------------


def test_a_lost_creation_while_listing_fails_waits_and_never_creates_blind(tmp_path):
    lost = BatchSettings(seconds=0.2, lost_create_rate=1.0)
    with Emulator(api_key=KEY, batch=BatchSettings(seconds=0.2, lost_create_rate=1.0, list_error_rate=1.0)) as emu:
        config = _config(emu.endpoint)
        file_id = _upload(BatchApi(config), tmp_path)
        manifest: dict[str, Any] = {"files": {file_id: {"lines": 20, "bytes": 1}}}
        Creator(BatchApi(config), manifest, lambda: None, "/chat/completions", backoff=0.0).create_missing()
        info = manifest["files"][file_id]
        assert "batch" not in info and info["error_status"] == 500 and "listing batches" in info["error"]
        for _ in range(3):  # later tries (as each poll makes them) while the listing still fails
            Creator(BatchApi(config), manifest, lambda: None, "/chat/completions", backoff=0.0).retry_due(
                file_id, deadline=time.time() + 60
            )
        stats = emu.stats()
        assert stats["batch_api"]["POST batches"] == 1 and stats["batches"]["created"] == 1
        assert stats["batch_api"]["GET batches"] >= 4 * 2  # each try listed (both attempts) instead of creating
        emu.configure(batch=lost)  # the listing works again: the batch the lost answer made is adopted
        Creator(BatchApi(config), manifest, lambda: None, "/chat/completions", backoff=0.0).retry_due(
            file_id, deadline=time.time() + 60
        )
        assert info["batch"]["input_file_id"] == file_id and "error" not in info
        assert emu.stats()["batch_api"]["POST batches"] == 1 and emu.stats()["batches"]["created"] == 1


def test_a_job_whose_creation_answers_are_lost_while_listing_fails_creates_each_batch_once(spark, tmp_path):
    lost = BatchSettings(seconds=0.3, lost_create_rate=1.0)
    with Emulator(batch=BatchSettings(seconds=0.3, lost_create_rate=1.0, list_error_rate=1.0)) as emu:
        _later(3.0, lambda: emu.configure(batch=lost))  # the listing comes back after 3 s
        rows = _stage(emu.endpoint, tmp_path, maxAttempts=2).transform(_questions(spark)).collect()
        stats = emu.stats()
    _each_row_once(rows, 60)
    assert all(r.error is None for r in rows)
    assert stats["batch_api"]["POST batches"] == stats["batches"]["created"] == 2  # one per partition's file
    assert sum(stats["batch_lines"].values()) == 60  # every request answered (and billed) once


# -- 5. every wait bounded --------------------------------------------------------------------------------


def test_a_list_that_ignores_after_ends_after_a_page_with_nothing_new(tmp_path):
    with Emulator(api_key=KEY, batch=BatchSettings(seconds=0.2, list_ignores_after_rate=1.0)) as emu:
        api = BatchApi(_config(emu.endpoint))
        file_id = _upload(api, tmp_path)
        made = {api.create(file_id, "/chat/completions")["id"] for _ in range(3)}
        listed: list[dict[str, Any]] = []
        reader = threading.Thread(target=lambda: listed.extend(api.list_batches()), daemon=True)
        reader.start()
        reader.join(timeout=20)
        assert not reader.is_alive(), "the listing never ended"
        assert {b["id"] for b in listed} == made and len(listed) == 3
        assert emu.stats()["batch_api"]["GET batches"] == 2  # the second page brought nothing new


def test_a_poll_and_a_download_held_unanswered_give_up_within_their_bound(tmp_path):
    with Emulator(api_key=KEY, batch=BatchSettings(seconds=0.2)) as emu:
        api = BatchApi(_config(emu.endpoint, attempts=2, read_timeout=0.5))
        file_id = _upload(api, tmp_path)
        batch_id = api.create(file_id, "/chat/completions")["id"]
        emu.configure(batch=BatchSettings(seconds=0.2, hold_calls="GET batches/{id}, GET files/{id}/content",
                                          hold_seconds=HOLD))  # fmt: skip
        for call in (lambda: api.get(batch_id), lambda: list(api.lines(file_id))):
            started = time.monotonic()
            with pytest.raises(BatchApiError, match="timeout") as raised:
                call()
            # the stated bound: maxAttempts attempts of requestTimeout each, and the backoff between them
            assert time.monotonic() - started < 2 * 0.5 + 1.0 and raised.value.error.attempts == 2


def test_a_job_whose_polls_and_downloads_are_held_waits_only_its_bounds(spark, tmp_path):
    plain = BatchSettings(seconds=0.3)
    with Emulator(batch=plain) as emu:
        stage = _stage(emu.endpoint, tmp_path, requestTimeout=0.5, maxAttempts=10)
        df = _questions(spark)
        emu.configure(batch=BatchSettings(seconds=0.3, hold_calls="GET batches/{id}", hold_seconds=HOLD))
        _later(2.0, lambda: emu.configure(batch=plain))
        started = time.monotonic()
        job = stage.submit(df)
        job.wait()  # its polls time out after 0.5 s each and are tried again, never held for HOLD
        assert job.status()["done"] and time.monotonic() - started < HOLD / 2
        emu.configure(batch=BatchSettings(seconds=0.3, hold_calls="GET files/{id}/content", hold_seconds=HOLD))
        _later(2.0, lambda: emu.configure(batch=plain))
        started = time.monotonic()
        rows = stage.transform(df).collect()  # the executors' downloads too
        assert time.monotonic() - started < HOLD / 2
        stats = emu.stats()
    _each_row_once(rows, 60)
    assert all(r.error is None for r in rows) and stats["batches"]["created"] == 2
    assert stats["batch_api"]["GET batches/{id}"] > 2  # the held polls were there, and timed out


@pytest.mark.parametrize("fault", ["cancel_stuck_rate", "cancel_error_rate"])
def test_a_cancel_that_never_completes_keeps_the_job_only_its_cancel_wait(spark, tmp_path, fault):
    hours = 3.0 / 3600  # batchTimeoutHours: 3 s; the cancel wait 1% of it, at least 10 s
    with Emulator(batch=BatchSettings(seconds=120.0, **{fault: 1.0})) as emu:
        stage = _stage(emu.endpoint, tmp_path, batchTimeoutHours=hours, maxAttempts=2)
        started = time.monotonic()
        rows = stage.transform(_questions(spark)).collect()
        elapsed = time.monotonic() - started
        stats = emu.stats()
        statuses = {b["status"] for b in BatchApi(_config(emu.endpoint)).list_batches()}
    _each_row_once(rows, 60)
    assert {r.error.code for r in rows} == {"batch_expired"}
    # stuck: cancelling for good; refused: never cancelled, still running (validating takes 12 s of the 120)
    assert statuses == {"cancelling"} if fault == "cancel_stuck_rate" else statuses <= {"validating", "in_progress"}
    assert stats["batch_api"]["POST batches/{id}/cancel"] >= 2 and stats["batches"] == {"created": 2}
    assert elapsed < 3.0 + 10.0 + 30.0  # the timeout, the cancel wait and Spark's passes; not 10 or 30 minutes


# -- 10. uploads left on the service; a null side of a similarity -------------------------------------------


class LosingProxy:
    """Forwards to ``upstream``; ``rule(method, path, body)`` may answer ``"before"`` (a 503 after a second,
    nothing reached the service) or ``"after"`` (the service acted, the answer is lost: a 500)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.rule: Any = lambda method, path, body: None
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _relay(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                when = proxy.rule(self.command, self.path.split("?")[0], raw)
                if when == "before":
                    time.sleep(1.0)
                    return self._answer(503, b'{"error": {"code": "ServiceUnavailable", "message": "later"}}')
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = requests.request(
                    self.command, proxy.upstream + self.path, data=raw, headers=headers, timeout=30
                )
                if when == "after":
                    return self._answer(500, b'{"error": {"code": "InternalServerError", "message": "lost"}}')
                self._answer(answer.status_code, answer.content)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _job_uploads(api: BatchApi) -> set[str]:
    return {str(f["id"]) for f in api.list_files() if str(f.get("filename")).startswith("spark_aoai-")}


def test_uploads_of_lost_answers_and_of_a_failed_pass_are_removed(spark, tmp_path):
    with Emulator(batch=BatchSettings(seconds=0.3)) as emu:
        proxy = LosingProxy(emu.endpoint)
        lost: list[int] = []

        def failing(method: str, path: str, body: bytes) -> str | None:
            if method != "POST" or not path.endswith("/files"):
                return None
            if b"question 59" in body:  # the second partition's uploads fail: the pass fails
                return "before"
            if not lost:  # the first partition's first upload is made and its answer lost
                lost.append(1)
                return "after"
            return None

        proxy.rule = failing
        stage = _stage(proxy.endpoint, tmp_path, maxAttempts=2)
        df = _questions(spark)
        with pytest.raises(RuntimeError, match="uploading the requests failed"):
            stage.transform(df)
        api = BatchApi(_config(emu.endpoint))
        left = _job_uploads(api)
        assert len(left) == 2 and emu.stats()["batches"] == {}  # the lost answer's file and its retry's
        proxy.rule = lambda method, path, body: None
        rows = stage.transform(df).collect()  # the next run uploads again and removes what the first left
        manifest = json.loads(next((tmp_path / "spark_aoai-batches-v1").glob("*.json")).read_text())
        assert _job_uploads(api) == set(manifest["files"]) and not left & set(manifest["files"])
        stats = emu.stats()
        assert stats["batches"]["created"] == 2 and sum(stats["batch_lines"].values()) == 60
        _each_row_once(rows, 60)
        assert all(r.error is None for r in rows)
        deleted = stage.submit(df).delete_files()
        assert deleted == 2 * 3 and _job_uploads(api) == set()  # inputs, outputs, error files
        proxy.close()


def test_similarity_with_a_null_side_sends_nothing_for_the_row(spark):
    with Emulator() as emu:
        names = ai.register(spark, embeddingDeploymentName="text-embedding-3-small", deploymentName="gpt-4o",
                            endpoint=emu.endpoint, apiKey="k")  # fmt: skip
        assert "ai_similarity" in names
        pairs = [(0, "alpha only", None), (1, None, "beta only"), (2, "gamma", "delta")]
        spark.createDataFrame(pairs, "id int, a string, b string").createOrReplaceTempView("null_pairs")
        rows = {r.id: r.out for r in spark.sql("SELECT id, ai_similarity(a, b) AS out FROM null_pairs").collect()}
        inputs = emu.stats()["inputs"]
    assert inputs == {"gamma": 1, "delta": 1}
    assert rows[0].similarity is None and rows[1].similarity is None and rows[2].similarity is not None
