"""Re-runs, caching and quotas through Spark: the stages with cacheDir, dedup, deployments and retry_failed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from spark_aoai import ChatCompletion, retry_failed
from spark_aoai._core import constants as C
from spark_aoai.emulator import Emulator, Faults, chat_reply
from spark_aoai.exceptions import ConfigurationError

JOB = Path(__file__).with_name("cache_job.py")
ROOT = Path(__file__).resolve().parents[1]


def prompts(spark, n: int = 200, partitions: int = 2):
    return spark.range(0, n, 1, partitions).select("id", F.concat(F.lit("prompt "), F.col("id")).alias("prompt"))


def chat(endpoint: str | None = None, **kwargs) -> ChatCompletion:
    settings = {"deploymentName": "gpt-4o", "promptCol": "prompt", "endpoint": endpoint, "usageCol": "usage"}
    return ChatCompletion(**{**settings, **kwargs})


def sent(emulator) -> int:
    return sum(emulator.stats()["requests"].values())


def test_a_second_run_with_the_same_cache_dir_sends_nothing(spark, emulator, tmp_path):
    stage = chat(emulator.endpoint, cacheDir=str(tmp_path), deploymentCol="answered_by")
    out = stage.transform(prompts(spark))
    first = spark.createDataFrame(out.collect(), out.schema)
    assert first.filter("error is not null").count() == 0 and sent(emulator) == 200
    assert {r.answered_by for r in first.select("answered_by").collect()} == {"gpt-4o"}
    emulator.reset_stats()
    again = spark.createDataFrame(stage.transform(prompts(spark)).collect(), out.schema)
    assert sent(emulator) == 0
    assert_df_equality(again.drop("usage", "answered_by"), first.drop("usage", "answered_by"), ignore_row_order=True)
    rows = again.collect()
    assert {r.answered_by for r in rows} == {"cache"} and {r.usage.total_tokens for r in rows} == {0}
    # sorting the output evaluates the stage twice (Spark samples it for the range partitioning): free here
    stage.transform(prompts(spark)).orderBy("id").collect()
    assert sent(emulator) == 0


def test_dedup_sends_each_distinct_prompt_once_and_can_be_turned_off(spark, emulator):
    distinct = [f"q{i}" for i in range(70)]
    data = [(i, p) for i, p in enumerate(distinct + [distinct[i % 70] for i in range(30)])]  # 30% repeat
    df = spark.createDataFrame(data, "id long, prompt string").coalesce(1)
    out = chat(emulator.endpoint).transform(df).collect()
    assert sent(emulator) == 70
    assert all(r.response == chat_reply([{"role": "user", "content": r.prompt}]) for r in out)
    assert sum(r.usage.total_tokens == 0 for r in out) == 30
    emulator.reset_stats()
    chat(emulator.endpoint, dedup=False).transform(df).collect()
    assert sent(emulator) == 100


def test_retry_failed_resends_only_the_retryable_error_rows(spark, emulator, tmp_path):
    emulator.configure(faults=Faults(error_503_rate=0.3, content_filter_marker="prompt 7", seed=3))
    stage = chat(emulator.endpoint, maxAttempts=1)
    stage.transform(prompts(spark)).write.parquet(str(tmp_path / "out"))
    out = spark.read.parquet(str(tmp_path / "out"))
    failed = {r.prompt: r.error.code for r in out.filter("error is not null").collect()}
    retryable = {p for p, code in failed.items() if code != "content_filter"}
    assert len(retryable) > 20 and failed["prompt 7"] == "content_filter"
    emulator.configure(faults=Faults(content_filter_marker="prompt 7"))
    emulator.reset_stats()
    fixed = retry_failed(stage, out)
    assert fixed.columns == out.columns and fixed.schema == out.schema
    rows = fixed.collect()
    assert len(rows) == 200 and len({r.id for r in rows}) == 200
    assert set(emulator.stats()["inputs"]) == retryable  # nothing else was sent
    assert {r.prompt for r in rows if r.error is not None} == {p for p in failed if p.startswith("prompt 7")}


QUOTA_FAULTS = [
    pytest.param(Faults(quota_429_rate=1.0, quota_retry_after_seconds=86400), id="azure-retry-after-86400"),
    pytest.param(Faults(capacity_429_rate=1.0), id="fabric-CapacityLimitExceeded"),
]


@pytest.mark.parametrize("faults", QUOTA_FAULTS)
def test_an_exhausted_quota_ends_200_rows_quickly_or_spills_to_the_next_deployment(spark, emulator, faults):
    emulator.configure(faults=faults)
    started = time.monotonic()
    rows = chat(emulator.endpoint).transform(prompts(spark)).collect()
    assert time.monotonic() - started < 30
    assert len(rows) == 200 and {(r.error.status, r.error.code) for r in rows} == {(429, "quota_exceeded")}
    with Emulator(extra_deployments={"gpt-4o-spare": "gpt-4o"}) as spare:
        deployments = [
            {"endpoint": emulator.endpoint, "deploymentName": "gpt-4o"},
            {"endpoint": spare.endpoint, "deploymentName": "gpt-4o-spare", "apiKey": "spare-key"},
        ]
        stage = ChatCompletion(promptCol="prompt", deployments=deployments, deploymentCol="answered_by")
        started = time.monotonic()
        rows = stage.transform(prompts(spark)).collect()
        assert time.monotonic() - started < 30
        assert {(r.error, r.answered_by) for r in rows} == {(None, "gpt-4o-spare")}
        assert all(r.response == chat_reply([{"role": "user", "content": r.prompt}]) for r in rows)
        assert set(Counter(spare.stats()["answered_inputs"]).values()) == {1}


def test_deployments_keep_their_credentials_out_of_saved_params(spark, tmp_path):
    stage = ChatCompletion(
        promptCol="prompt",
        deployments=[{"endpoint": "http://127.0.0.1:1", "deploymentName": "a", "apiKey": "s3cr3t-key"}],
    )
    stage.save(str(tmp_path / "stage"))
    saved = "".join(p.read_text() for p in (tmp_path / "stage").rglob("part-*"))
    assert "s3cr3t-key" not in saved and '"deploymentName": "a"' in saved.replace('\\"', '"')
    assert "s3cr3t-key" not in stage.explainParams()
    with pytest.raises(ConfigurationError, match="not both"):
        chat("http://127.0.0.1:1", deployments=[{"deploymentName": "b"}]).transform(prompts(spark))
    with pytest.raises(ConfigurationError, match="unknown keys"):
        ChatCompletion(deployments=[{"deploymentName": "b", "api_key": "x"}])
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(ConfigurationError, match="cacheDir"):
        chat("http://127.0.0.1:1", cacheDir=str(blocked)).transform(prompts(spark))


def run_job(emulator, cache: Path, out: Path, rows: int, master: str, *kill: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, str(JOB), emulator.endpoint, str(cache), str(out), str(rows), master, *kill]
    return subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL)


def answered(emulator) -> Counter:
    return Counter(emulator.stats()["answered_inputs"])


def check_every_row_once(spark, out: Path, rows: int) -> None:
    result = spark.read.parquet(str(out)).collect()
    assert len(result) == rows and {r.id for r in result} == set(range(rows))
    assert all(r.error is None and r.response == chat_reply([{"role": "user", "content": r.prompt}]) for r in result)


def test_a_job_killed_half_way_resends_only_what_was_not_stored(spark, emulator, tmp_path):
    emulator.configure(faults=Faults(latency_ms=40))
    rows = 1200
    job = run_job(emulator, tmp_path / "cache", tmp_path / "out", rows, "local[2]")
    deadline = time.monotonic() + 120
    while sum(answered(emulator).values()) < rows // 2:
        assert job.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)  # the driver and its whole Spark, at once
    job.wait()
    time.sleep(1)
    before = set(answered(emulator))
    assert rows // 2 <= len(before) < rows
    again = run_job(emulator, tmp_path / "cache", tmp_path / "out", rows, "local[2]")
    assert again.wait(timeout=180) == 0
    check_every_row_once(spark, tmp_path / "out", rows)
    counts = answered(emulator)
    assert set(counts) == {f"resume prompt {i}" for i in range(rows)}
    twice = [p for p, n in counts.items() if n > 1]
    assert all(n <= 2 for n in counts.values())
    # re-sent: the answers of each task's last increment, and its requests in flight
    assert len(twice) <= 2 * (C.CACHE_FLUSH_ANSWERS + 4) and len(twice) < len(before) // 2


def test_a_killed_python_worker_retried_by_spark_bills_no_stored_row_twice(spark, emulator, tmp_path):
    emulator.configure(faults=Faults(latency_ms=40))
    rows = 1200
    marker = tmp_path / "killed"
    job = run_job(emulator, tmp_path / "cache", tmp_path / "out", rows, "local[2,3]", str(marker), "3.0")
    assert job.wait(timeout=240) == 0
    assert marker.exists()  # a worker was killed, and Spark's retry of its task finished the job
    check_every_row_once(spark, tmp_path / "out", rows)
    counts = answered(emulator)
    twice = [p for p, n in counts.items() if n > 1]
    killed_task_rows = rows // 2
    assert 0 < len(twice) <= C.CACHE_FLUSH_ANSWERS + 4 < killed_task_rows
    assert sum(counts.values()) == rows + len(twice)


# -- #23: entries checked on read, a store failing mid-job, re-asks stored, sources and counts right ---------------


def entries(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / C.CACHE_FORMAT).rglob("*.json"))


def billed_tokens(emulator) -> int:
    return int(emulator.stats(inputs=False)["billed_tokens"])


def right(rows) -> bool:
    return all(r.error is None and r.response == chat_reply([{"role": "user", "content": r.prompt}]) for r in rows)


def test_swapped_and_damaged_entries_are_asked_again_never_served_or_failing(spark, emulator, tmp_path):
    stage = chat(emulator.endpoint, cacheDir=str(tmp_path), deploymentCol="answered_by")
    assert right(stage.transform(prompts(spark, 40)).collect())
    assert not list((tmp_path / C.CACHE_FORMAT).rglob("probe*"))  # the driver's check leaves nothing behind
    paths = entries(tmp_path)
    assert len(paths) == 40
    contents = [p.read_bytes() for p in paths]
    for path, data in zip(paths[:30], contents[1:31], strict=True):  # 30 hold another request's answer
        path.write_bytes(data)
    paths[30].write_bytes(b"\x00garbage")
    paths[31].write_bytes(contents[31][:-5])  # cut short
    paths[32].unlink()
    paths[32].mkdir()  # a directory where the entry should be
    emulator.reset_stats()
    rows = stage.transform(prompts(spark, 40)).collect()
    assert len(rows) == 40 and right(rows)  # not one row takes another request's answer
    assert sent(emulator) == 33 and {r.answered_by for r in rows} == {"gpt-4o", "cache"}
    assert sum(r.usage.total_tokens for r in rows) == billed_tokens(emulator) == stage.statistics().total_tokens
    emulator.reset_stats()
    assert right(stage.transform(prompts(spark, 40)).collect()) and sent(emulator) == 0  # stored again, right


def break_mid_job(link: Path, real: Path, out) -> list:
    """Collect ``out`` while ``link`` (a symlink to the folder ``real``) is swapped, once files appear in
    ``real``, for a link to a plain file: atomically, as a mount that goes away (a folder renamed could be made
    again by a writer in between)."""
    done: list = []
    job = threading.Thread(target=lambda: done.append(out.collect()))
    job.start()
    deadline = time.monotonic() + 60
    while not list(real.rglob("*.json")):
        assert time.monotonic() < deadline and job.is_alive()
        time.sleep(0.02)
    blocker = link.parent / "blocker"
    blocker.write_text("not a directory any more")
    (link.parent / "new-link").symlink_to(blocker)
    os.replace(link.parent / "new-link", link)
    job.join(timeout=120)
    assert done, "the job did not end"
    return done[0]


def test_a_cache_dir_that_fails_mid_job_loses_no_answer_and_is_counted(spark, emulator, tmp_path):
    emulator.configure(faults=Faults(latency_ms=100))
    cache, real = tmp_path / "cache", tmp_path / "real"
    cache.mkdir()
    real.mkdir()
    (cache / C.CACHE_FORMAT).symlink_to(real)
    stage = chat(emulator.endpoint, cacheDir=str(cache), concurrency=2)
    rows = break_mid_job(cache / C.CACHE_FORMAT, real, stage.transform(prompts(spark, 160)))
    assert len(rows) == 160 and right(rows)  # every answer returned
    stored = len(list(real.rglob("*.json")))  # the increments written before the store went away
    stats = stage.statistics()
    assert 0 < stored < 160 and stats.answers_not_stored == 160 - stored
    assert "answers not stored in cacheDir" in str(stats)
    assert sent(emulator) == 160 and stats.total_tokens == billed_tokens(emulator) == sum(
        r.usage.total_tokens for r in rows
    )


def test_a_re_asked_structured_answer_is_found_by_the_re_run(spark, emulator, tmp_path):
    emulator.configure(faults=Faults(bad_structured_rate=0.5, seed=11))
    stage = chat(emulator.endpoint, cacheDir=str(tmp_path), outputSchema="label string, score double",
                 outputRetries=3, deploymentCol="answered_by")  # fmt: skip
    first = {r.id: r for r in stage.transform(prompts(spark, 40)).collect()}
    reasks = emulator.stats()["requests"]["chat 200"] - 40
    failed = {i for i, r in first.items() if r.error is not None}
    assert reasks >= 10 and reasks > 3 * len(failed)  # some rows were answered after a re-ask
    assert sum(r.usage.total_tokens for r in first.values() if r.usage) <= billed_tokens(emulator)
    emulator.configure(faults=Faults())
    emulator.reset_stats()
    again = {r.id: r for r in stage.transform(prompts(spark, 40)).collect()}
    assert sent(emulator) == len(failed)  # only the invalid_output rows: every answer was stored for its row
    assert set(emulator.stats()["inputs"]) == {f"prompt {i}" for i in failed}
    assert all(
        again[i].response == first[i].response and again[i].answered_by == "cache" for i in first if i not in failed
    )
    assert all(r.error is None for r in again.values())
