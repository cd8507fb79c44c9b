"""Batch mode against the emulator's Files and Batch APIs over real HTTP and a local Spark: the same answers
and error values as online mode with no online request, resume after a killed driver, expired, failed and
timed-out batches, files split at Azure's limits, the cache, the task helpers and statistics."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from spark_aoai import ChatCompletion, Embedding, ai
from spark_aoai.emulator import BatchSettings, Emulator, Faults
from spark_aoai.exceptions import ConfigurationError

ROOT = Path(__file__).resolve().parents[1]
FILTERED = "forbidden topic"


def questions(spark, rows: int, partitions: int = 2):
    """Rows with duplicates, a null prompt every 97th and a content-filtered one every 50th."""
    text = (
        F.when(F.col("id") % 97 == 3, F.lit(None))
        .when(F.col("id") % 50 == 7, F.concat(F.lit(f"{FILTERED} "), F.col("id")))
        .otherwise(F.concat(F.lit("question "), F.col("id") % 400))
    )
    return spark.range(0, rows, 1, partitions).select("id", text.alias("prompt"))


def batch_chat(endpoint: str, batch_dir: str, **params) -> ChatCompletion:
    return ChatCompletion(**{**chat_params(endpoint), "mode": "batch", "batchDir": batch_dir,
                             "batchPollSeconds": 0.2, **params})  # fmt: skip


def chat_params(endpoint: str) -> dict:
    return {"deploymentName": "gpt-4o", "promptCol": "prompt", "endpoint": endpoint, "apiKey": "k", "usageCol": "usage"}


@pytest.fixture
def emu():
    with Emulator(faults=Faults(content_filter_marker=FILTERED), batch=BatchSettings(seconds=0.3)) as emulator:
        yield emulator


def by_id(rows, *columns: str) -> dict:
    return {r.id: tuple(_plain(r[c]) for c in columns) for r in rows}


def _plain(value):
    if value is None or isinstance(value, (str, int, float)):
        return value
    if hasattr(value, "asDict"):
        return {k: _plain(v) for k, v in value.asDict().items() if k not in ("request_id",)}
    if hasattr(value, "toArray"):
        return [round(float(x), 6) for x in value.toArray()]
    return [_plain(v) for v in value]


def online_requests(emulator) -> int:
    return sum(emulator.stats()["requests"].values())


def test_a_thousand_rows_in_batch_mode_get_exactly_the_online_answers(spark, emu, tmp_path):
    df = questions(spark, 1000)
    online = ChatCompletion(**chat_params(emu.endpoint)).transform(df).collect()
    assert online_requests(emu) > 0
    emu.reset_stats()
    stage = batch_chat(emu.endpoint, str(tmp_path))
    batch = stage.transform(df).collect()
    stats = emu.stats()
    assert online_requests(emu) == 0  # zero online requests
    assert len(batch) == 1000 and len({r.id for r in batch}) == 1000
    assert by_id(batch, "response", "usage") == by_id(online, "response", "usage")
    status = lambda rows: {r.id: (r.error.status, r.error.code) if r.error else None for r in rows}  # noqa: E731
    assert status(batch) == status(online)
    assert {v[1] for v in status(batch).values() if v} == {"content_filter", "invalid_input"}
    # one line per distinct request of a partition (ids 0-499 and 500-999), the filtered ones refused
    distinct = {(r.id >= 500, r.prompt) for r in batch if r.prompt is not None}
    filtered = sum(1 for r in batch if r.error is not None and r.error.code == "content_filter")
    assert stats["batch_lines"] == {"chat 200": len(distinct) - filtered, "chat 400": filtered}


def test_embeddings_in_batch_mode_equal_the_online_vectors(spark, emu, tmp_path):
    # texts repeated across the partition's Arrow batches (50 rows each): online mode answers the repeats
    # from its per-task vector cache; batch mode must still find each text's line
    df = spark.range(0, 300, 1, 2).select("id", F.concat(F.lit("text "), F.col("id") % 40).alias("prompt"))
    params = {"deploymentName": "text-embedding-3-small", "inputCol": "prompt", "endpoint": emu.endpoint,
              "apiKey": "k", "usageCol": "usage"}  # fmt: skip
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "50")
    try:
        online = Embedding(**params).transform(df).collect()
        emu.reset_stats()
        batch = Embedding(**params, mode="batch", batchDir=str(tmp_path), batchPollSeconds=0.2).transform(df).collect()
    finally:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "10000")
    assert online_requests(emu) == 0 and emu.stats()["batch_lines"] == {"embeddings 200": 80}  # 40 texts x 2
    assert all(r.error is None for r in batch)
    assert by_id(batch, "embedding") == by_id(online, "embedding")
    total = lambda rows: sum(r.usage.total_tokens for r in rows if r.usage)  # noqa: E731
    # each text paid once a partition; online mode pays a repeat again when its batch was planned before
    # the first answer came back (two Arrow batches in flight)
    assert total(batch) == emu.stats()["batch_billed_tokens"] > 0 and total(batch) <= total(online)


def test_without_dedup_every_copy_of_a_request_is_its_own_line(spark, emu, tmp_path):
    df = spark.range(0, 60, 1, 2).select("id", F.concat(F.lit("same "), F.col("id") % 3).alias("prompt"))
    out = batch_chat(emu.endpoint, str(tmp_path), dedup=False).transform(df).collect()
    assert emu.stats()["batch_lines"] == {"chat 200": 60} and all(r.error is None for r in out)
    assert all(r.usage.total_tokens > 0 for r in out)  # each copy answered, and billed, on its own


def test_a_driver_killed_while_its_batches_run_is_resumed_without_submitting_again(spark, emu, tmp_path):
    emu.configure(batch=BatchSettings(seconds=25.0))
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, str(ROOT / "tests" / "batch_job.py"), emu.endpoint, str(tmp_path), "400"]
    job = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while emu.stats()["batches"].get("created", 0) < 2 or not _manifest_has_batches(tmp_path, 2):
        assert job.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(job.pid, signal.SIGKILL)  # the driver and its whole Spark, at once
    job.wait()
    before = emu.stats()
    emu.configure(batch=BatchSettings(seconds=0.3))  # new batches would be quick; the running ones go on
    out = batch_chat(emu.endpoint, str(tmp_path)).transform(questions(spark, 400)).collect()
    after = emu.stats()
    assert after["batches"].get("created") == before["batches"].get("created") == 2  # nothing submitted again
    assert after["batch_api"].get("POST files") == before["batch_api"].get("POST files")
    assert len(out) == 400 and all(r.error is None or r.error.code in ("content_filter", "invalid_input") for r in out)
    assert online_requests(emu) == 0


def _manifest_has_batches(folder: Path, count: int) -> bool:
    for path in folder.rglob("*.json"):
        try:
            files = json.loads(path.read_text())["files"].values()
        except (ValueError, KeyError):
            continue
        if sum(1 for f in files if f.get("batch")) >= count:
            return True
    return False


def test_a_batch_created_but_not_saved_is_adopted_not_submitted_twice(spark, emu, tmp_path):
    df = questions(spark, 100)
    job = batch_chat(emu.endpoint, str(tmp_path)).submit(df)
    manifest = next(tmp_path.rglob("*.json"))
    saved = json.loads(manifest.read_text())
    for info in saved["files"].values():
        info.pop("batch")  # the driver died after creating the batches, before saving them
    manifest.write_text(json.dumps(saved))
    out = batch_chat(emu.endpoint, str(tmp_path)).transform(df).collect()
    assert emu.stats()["batches"]["created"] == job.status()["batches"] == 2
    assert len(out) == 100 and sum(r.error is None for r in out) > 80


def test_submit_returns_at_once_and_transform_joins_later(spark, emu, tmp_path):
    emu.configure(batch=BatchSettings(seconds=3.0))
    df = questions(spark, 200)
    started = time.monotonic()
    job = batch_chat(emu.endpoint, str(tmp_path)).submit(df)
    assert time.monotonic() - started < 30 and not job.status()["done"]
    out = batch_chat(emu.endpoint, str(tmp_path)).transform(df).collect()
    state = job.status()
    assert state["done"] and state["completed"] + state["failed"] == state["total"] and state["failed"] == 4
    assert len(out) == 200 and emu.stats()["batches"]["created"] == 2


def test_delete_files_removes_the_jobs_files_from_the_service(spark, emu, tmp_path):
    df = questions(spark, 60)
    stage = batch_chat(emu.endpoint, str(tmp_path))
    assert sum(r.error is None for r in stage.transform(df).collect()) > 50
    job = stage.submit(df)  # the same job: found in the manifest, nothing submitted
    assert job.delete_files() == 6  # 2 input files, 2 output files, 2 (empty) error files
    assert job.delete_files() == 0  # gone already
    assert emu.stats()["batches"]["created"] == 2
    again = stage.transform(df).collect()  # a later join says what happened
    assert all(r.error.code in ("batch_failed", "invalid_input") for r in again)
    assert any("delete_files" in r.error.message for r in again if r.error.code == "batch_failed")


def test_rows_split_otherwise_after_submit_find_the_same_job_and_their_answers(spark, emu, tmp_path):
    df = questions(spark, 300)
    job = batch_chat(emu.endpoint, str(tmp_path)).submit(df.repartition(3))
    assert job.status()["batches"] == 3
    merged = batch_chat(emu.endpoint, str(tmp_path)).transform(df.coalesce(1)).collect()  # one partition now
    assert emu.stats()["batches"]["created"] == 3 and emu.stats()["batch_api"]["POST files"] == 3  # the same job
    assert sum(r.error is None for r in merged) == sum(
        r.prompt is not None and FILTERED not in r.prompt for r in merged
    )


def test_an_oversized_request_a_changing_input_and_fail_on_error(spark, emu, tmp_path):
    rows = [(1, "short question"), (2, "long question " * 40)]
    df = spark.createDataFrame(rows, "id int, prompt string")
    out = batch_chat(emu.endpoint, str(tmp_path / "a"), batchMaxBytesPerFile=400).transform(df).orderBy("id").collect()
    assert (
        out[0].error is None and out[1].error.code == "invalid_input" and "batchMaxBytesPerFile" in out[1].error.message
    )
    fresh = F.udf(lambda: f"q {random.random()}", "string").asNondeterministic()  # F.rand() is seeded per plan
    changing = spark.range(0, 20, 1, 2).select("id", fresh().alias("prompt"))
    with pytest.raises(RuntimeError, match="input changed between two reads"):
        batch_chat(emu.endpoint, str(tmp_path / "b")).transform(changing)
    filtered_only = questions(spark, 60).where(F.col("prompt").isNotNull())  # its only errors: content_filter
    with pytest.raises(Exception, match="content_filter"):
        batch_chat(emu.endpoint, str(tmp_path / "c"), failOnError=True).transform(filtered_only).collect()


def test_an_expired_and_a_failed_batch_mark_their_rows(spark, emu, tmp_path):
    emu.configure(batch=BatchSettings(seconds=0.3, expire_after_lines=30))
    out = batch_chat(emu.endpoint, str(tmp_path / "a")).transform(questions(spark, 200, partitions=1)).collect()
    codes = [r.error.code if r.error else None for r in out]
    assert codes.count("batch_expired") > 100 and codes.count(None) >= 25
    emu.configure(batch=BatchSettings(seconds=0.3, fail_rate=1.0))  # token_limit_exceeded, every time
    stage = batch_chat(emu.endpoint, str(tmp_path / "b"), batchTimeoutHours=8 / 3600)  # room to resubmit under load
    out = stage.transform(questions(spark, 200)).collect()
    assert emu.stats()["batches"]["created"] > 2  # submitted again (with backoff) until the timeout
    failed = [r.error for r in out if r.error is not None and r.error.code != "invalid_input"]
    assert len(failed) == 200 - sum(r.prompt is None for r in out)
    # refused each time; when the timeout comes while a resubmission runs, the row expires and says why
    assert all(e.code in ("batch_failed", "batch_expired") and "token_limit_exceeded" in e.message for e in failed), {
        (e.code, e.message) for e in failed
    }
    assert any(e.code == "batch_failed" for e in failed) or all("submitted again after" in e.message for e in failed)


def test_a_batch_refused_for_the_enqueued_token_quota_is_submitted_again(spark, emu, tmp_path):
    emu.configure(batch=BatchSettings(seconds=0.2, fail_rate=1.0))
    df = questions(spark, 100)
    job = batch_chat(emu.endpoint, str(tmp_path)).submit(df)
    deadline = time.monotonic() + 30
    while emu.stats()["batches"].get("failed", 0) < 2:  # the quota refused both batches
        job.status(poll=True)  # (polling submits them again, to be refused again)
        assert time.monotonic() < deadline
        time.sleep(0.2)
    emu.configure(batch=BatchSettings(seconds=0.2))  # the quota has room again
    out = batch_chat(emu.endpoint, str(tmp_path)).transform(df).collect()
    assert emu.stats()["batches"]["created"] >= 4 and emu.stats()["batches"]["completed"] == 2
    assert all(r.error is None or r.error.code in ("content_filter", "invalid_input") for r in out)


def test_a_job_past_its_timeout_is_cancelled_and_its_rows_expire(spark, emu, tmp_path):
    emu.configure(batch=BatchSettings(seconds=60.0))
    stage = batch_chat(emu.endpoint, str(tmp_path), batchTimeoutHours=2 / 3600)
    started = time.monotonic()
    out = stage.transform(questions(spark, 100)).collect()
    assert time.monotonic() - started < 60
    assert emu.stats()["batches"].get("cancelled") == 2
    assert {r.error.code for r in out if r.prompt is not None} == {"batch_expired"}


def test_inputs_over_the_file_limits_are_split(spark, emu, tmp_path):
    emu.configure(batch=BatchSettings(seconds=0.3, max_lines=60, max_bytes=20_000))
    df = questions(spark, 300, partitions=1).where(F.col("prompt").isNotNull())
    out = batch_chat(emu.endpoint, str(tmp_path), batchMaxLinesPerFile=60, batchMaxBytesPerFile=20_000).transform(df)
    rows = out.collect()
    assert sum(r.error is None for r in rows) > 250
    created = emu.stats()["batches"]["created"]
    assert created >= 5  # 300 rows, 294 distinct requests: at least 5 files of at most 60 lines
    manifest = json.loads(next(tmp_path.rglob("*.json")).read_text())
    assert all(f["lines"] <= 60 and f["bytes"] <= 20_000 for f in manifest["files"].values())


def test_the_cache_makes_a_second_batch_job_submit_only_what_failed(spark, emu, tmp_path):
    df = questions(spark, 200)
    cache = {"cacheDir": str(tmp_path / "c")}
    first = batch_chat(emu.endpoint, str(tmp_path / "b1"), **cache).transform(df).collect()
    filtered = sum(1 for r in first if r.error is not None and r.error.code == "content_filter")
    assert filtered == 4
    emu.reset_stats()
    again = batch_chat(emu.endpoint, str(tmp_path / "b2"), **cache).transform(df).collect()
    assert emu.stats()["batch_lines"] == {"chat 400": filtered}  # errors are not stored: asked again, alone
    assert by_id(again, "response", "error") == by_id(first, "response", "error")
    assert all(r.usage is None or r.usage.total_tokens == 0 for r in again)  # a stored answer costs nothing
    emu.reset_stats()
    online = ChatCompletion(**chat_params(emu.endpoint), **cache).transform(df).collect()  # online reads it too
    assert by_id(online, "response") == by_id(first, "response")
    assert emu.stats()["requests"] == {"chat 400": filtered}


def test_the_responses_api_in_batch_mode_equals_online(spark, emu, tmp_path):
    df = questions(spark, 150)
    online = ChatCompletion(**chat_params(emu.endpoint), apiType="responses").transform(df).collect()
    batch = batch_chat(emu.endpoint, str(tmp_path), apiType="responses").transform(df).collect()
    assert by_id(batch, "response", "usage") == by_id(online, "response", "usage")
    assert sum(emu.stats()["batch_lines"].values()) > 0 and sum(r.error is None for r in batch) > 130


def test_classify_in_batch_mode_equals_online(spark, emu, tmp_path):
    df = questions(spark, 120).where(F.col("prompt").isNotNull())
    labels = ["weather", "sport", "other"]
    common = {"deploymentName": "gpt-4o", "endpoint": emu.endpoint, "apiKey": "k"}
    online = ai.classify("prompt", labels=labels, outputCol="label", **common).transform(df).collect()
    batch = ai.classify("prompt", labels=labels, outputCol="label", mode="batch", batchDir=str(tmp_path),
                        batchPollSeconds=0.2, **common).transform(df).collect()  # fmt: skip
    assert online_requests(emu) > 0 and sum(emu.stats()["batch_lines"].values()) > 0
    assert by_id(batch, "label", "error") == by_id(online, "label", "error")
    assert {r.label for r in batch if r.error is None} <= set(labels) and sum(r.error is None for r in batch) > 100


def test_statistics_in_batch_mode_count_rows_tokens_and_half_the_price(spark, emu, tmp_path):
    stage = batch_chat(emu.endpoint, str(tmp_path))
    out = stage.transform(questions(spark, 200))
    rows = out.collect()
    assert out.count() == 200  # a second action reads the answers again: not billed, not counted again
    stats = stage.statistics()
    assert stats.rows == 200 and stats.rows_failed == sum(r.error is not None for r in rows)
    billed = emu.stats()["batch_billed_tokens"]
    assert stats.total_tokens == sum(r.usage.total_tokens for r in rows if r.usage) == billed > 0
    online = ChatCompletion(**chat_params(emu.endpoint))
    online.transform(questions(spark, 200)).collect()
    full = online.statistics()
    assert stats.estimated_cost == pytest.approx(full.estimated_cost / 2)


def test_batch_mode_is_checked_on_the_driver(spark, emu, tmp_path):
    df = questions(spark, 10)
    with pytest.raises(ConfigurationError, match="batchDir"):
        ChatCompletion(**chat_params(emu.endpoint), mode="batch").transform(df)
    stream = spark.readStream.format("rate").load().select(F.col("value").alias("id"), F.lit("q").alias("prompt"))
    with pytest.raises(ConfigurationError, match="static DataFrame"):
        batch_chat(emu.endpoint, str(tmp_path)).transform(stream)
    with pytest.raises(ConfigurationError, match="mode must be one of"):
        ChatCompletion(**chat_params(emu.endpoint), mode="offline").transform(df)
    with pytest.raises(ConfigurationError, match="similarity runs online only"):
        ai.similarity("prompt", "prompt", deploymentName="e", endpoint=emu.endpoint, apiKey="k", mode="batch",
                      batchDir=str(tmp_path)).transform(df)  # fmt: skip
    with pytest.raises(ConfigurationError, match="batch mode"):
        ChatCompletion(**chat_params(emu.endpoint)).submit(df)
    from spark_aoai.functions import chat_udf

    with pytest.raises(ConfigurationError, match="a UDF or SQL function sends online"):
        chat_udf(**chat_params(emu.endpoint), mode="batch", batchDir=str(tmp_path))
    with pytest.warns(UserWarning, match="ignores concurrency, rowsPerRequest"):
        batch_chat(emu.endpoint, str(tmp_path), concurrency=4, rowsPerRequest=5).transform(df).collect()
    assert online_requests(emu) == 0


def test_unreadable_and_doubled_output_lines_are_their_rows_errors_never_the_jobs(spark, emu, tmp_path):
    emu.configure(batch=BatchSettings(seconds=0.3, text_status_marker="question 1", duplicate_marker="question 2"))
    rows = [(i, f"question {i}") for i in range(40)]  # 1, 10-19: status "OK"; 2, 20-29: two answers each
    df = spark.createDataFrame(rows, "id int, prompt string").coalesce(1)
    online = {r.id: r.response for r in ChatCompletion(**chat_params(emu.endpoint)).transform(df).collect()}
    for attempt in range(2):  # a re-run reads the same files the same way: the job never fails for them
        out = {r.id: r for r in batch_chat(emu.endpoint, str(tmp_path)).transform(df).collect()}
        assert len(out) == 40
        for i, row in out.items():
            text = f"question {i}"
            if "question 1" in text or "question 2" in text:
                assert row.response is None and row.error.code == "malformed_response", (i, attempt)
            else:
                assert row.error is None and row.response == online[i]  # never another row's answer
    assert "two different answers" in out[2].error.message and "not a number" in out[1].error.message
