"""Hostile answers and job-wide faults: every job ends within its bounds, no row is lost, nothing leaks."""

from __future__ import annotations

import socket
import time

import pytest

from spark_aoai import ChatCompletion, Embedding, failure_of
from spark_aoai._client.auth import TokenProvider
from spark_aoai._client.config import ClientConfig, Limits, resolve_endpoint
from spark_aoai._client.retry import RetryPolicy
from spark_aoai._engine.partition import run_partition
from spark_aoai._planning.operations import ChatOperation
from spark_aoai.emulator import Emulator, chat_reply

FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.1)


def engine_run(endpoint: str, prompts: list[str], credential, **limits):
    cfg = ClientConfig(
        endpoint=resolve_endpoint(endpoint),
        deployment="gpt-4o",
        credential=credential,
        retry=FAST,
        limits=Limits(**{"concurrency": 4, **limits}),
        fail_on_systemic=False,  # onSystemicError="mark"
    )
    ((results, _),) = list(run_partition(iter([(prompts, None)]), ChatOperation(model=None), cfg))
    return results


def test_a_provider_that_always_raises_marks_every_row_when_asked_to(emulator):
    def provider() -> str:
        raise RuntimeError("identity endpoint unavailable")

    started = time.monotonic()
    results = engine_run(emulator.endpoint, [f"p{i}" for i in range(30)], TokenProvider(provider))
    assert time.monotonic() - started < 20  # never hangs on leaked in-flight slots
    assert {e.code for e in results.errors} == {"credential_error"}
    assert all("identity endpoint unavailable" in e.message for e in results.errors)
    assert emulator.stats()["requests"] == {}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def prompts(spark, n: int = 200):
    return spark.createDataFrame([(i, f"row {i}") for i in range(n)], "id int, prompt string").repartition(2)


def test_nothing_listening_fails_the_job_within_seconds(spark):
    endpoint = f"http://127.0.0.1:{free_port()}"
    stage = ChatCompletion(deploymentName="gpt-4o", promptCol="prompt", endpoint=endpoint, apiKey="k" * 20)
    started = time.monotonic()
    with pytest.raises(Exception) as raised:
        stage.transform(prompts(spark)).collect()
    assert time.monotonic() - started < 30
    error = failure_of(raised.value)
    assert error is not None and error["code"] == "connection_error"
    assert "endpoint host 127.0.0.1" in str(raised.value) and "'gpt-4o'" in str(raised.value)
    marked = stage.copy({stage.onSystemicError: "mark"}).transform(prompts(spark)).collect()
    assert len(marked) == 200 and {r.error.code for r in marked} == {"connection_error"}


def test_a_wrong_key_fails_the_job_within_seconds_and_never_shows_the_key(spark):
    wrong = "wrong-key-0123456789abcdef"
    with Emulator(api_key="the-right-key-0123456789") as emu:
        stage = ChatCompletion(deploymentName="gpt-4o", promptCol="prompt", endpoint=emu.endpoint, apiKey=wrong)
        started = time.monotonic()
        with pytest.raises(Exception) as raised:
            stage.transform(prompts(spark)).collect()
        assert time.monotonic() - started < 30
        assert failure_of(raised.value)["status"] == 401
        assert wrong not in str(raised.value)
        # each task stops at its first 401: at most the requests already in flight (2 tasks x concurrency 32)
        assert emu.stats()["requests"].get("chat 401", 0) <= 2 * 32
        marked = stage.copy({stage.onSystemicError: "mark"}).transform(prompts(spark)).collect()
        assert len(marked) == 200 and all(r.error.status == 401 and r.response is None for r in marked)


def test_vector_output_survives_failed_rows(spark, emulator):
    df = spark.createDataFrame([(1, "fine"), (2, None), (3, ""), (4, "also fine")], "id int, text string")
    stage = Embedding(
        deploymentName="text-embedding-3-small", inputCol="text", endpoint=emulator.endpoint, outputType="vector"
    )
    rows = {r.id: r for r in stage.transform(df).collect()}
    assert rows[1].embedding is not None and len(rows[1].embedding) == 1536
    assert rows[2].embedding is None and rows[3].embedding is None
    assert rows[2].error.code == rows[3].error.code == "invalid_input"


def test_columns_with_dots_in_their_names_are_kept(spark, emulator):
    df = spark.createDataFrame([(1, "dotted?", 2.5)], "id int, prompt string, `price.eur` double")
    df = df.withColumnRenamed("prompt", "the.prompt")
    out = ChatCompletion(deploymentName="gpt-4o", promptCol="the.prompt", endpoint=emulator.endpoint).transform(df)
    assert out.columns == ["id", "the.prompt", "price.eur", "response", "error"]
    row = out.first()
    assert row["response"] == chat_reply([{"role": "user", "content": "dotted?"}]) and row["price.eur"] == 2.5


def chat_stage(endpoint: str, **kwargs) -> ChatCompletion:
    return ChatCompletion(**{"deploymentName": "gpt-4o", "promptCol": "prompt", "endpoint": endpoint, **kwargs})


@pytest.mark.parametrize(
    ("faults", "service_code"),
    [
        ({"quota_429_rate": 1.0, "quota_retry_after_seconds": 86400}, "429"),
        ({"capacity_429_rate": 1.0}, "CapacityLimitExceeded"),
    ],
)
def test_an_exhausted_quota_ends_the_rows_at_once(spark, emulator, faults, service_code):
    from spark_aoai.emulator import Faults

    emulator.configure(faults=Faults(**faults))
    started = time.monotonic()
    rows = chat_stage(emulator.endpoint, deadlineSeconds=600).transform(prompts(spark)).collect()
    assert time.monotonic() - started < 30
    assert len(rows) == 200 and {(r.error.status, r.error.code) for r in rows} == {(429, "quota_exceeded")}
    assert all(service_code in r.error.message for r in rows)  # the service's code and message, not "timeout"
    # each task stops at its first refusals: at most the requests already in flight are sent
    assert sum(emulator.stats()["requests"].values()) <= 2 * 32


def test_429s_without_retry_after_end_after_one_retry_schedule(spark, emulator):
    from spark_aoai.emulator import Faults

    emulator.configure(faults=Faults(bare_429_rate=1.0))
    started = time.monotonic()
    rows = chat_stage(emulator.endpoint, maxAttempts=4).transform(prompts(spark)).collect()
    elapsed = time.monotonic() - started
    assert elapsed < 30, elapsed  # one schedule (0.5 + 1 + 2 s, x1.5 jitter), not 200 rows' schedules in waves
    assert len(rows) == 200 and {r.error.status for r in rows} == {429}
    assert any("stopped sending" in r.error.message for r in rows)
    assert sum(emulator.stats()["requests"].values()) < 200  # most rows were never sent


def test_a_trickling_answer_cannot_outlast_the_attempt_or_the_deadline(spark, emulator):
    from spark_aoai.emulator import Faults

    emulator.configure(faults=Faults(trickle_rate=1.0, trickle_seconds=30))
    df = prompts(spark, 4)
    started = time.monotonic()
    rows = chat_stage(emulator.endpoint, requestTimeout=1.5, maxAttempts=2).transform(df).collect()
    assert time.monotonic() - started < 12
    assert {(r.error.code, r.error.attempts) for r in rows} == {("timeout", 2)}
    started = time.monotonic()
    rows = chat_stage(emulator.endpoint, requestTimeout=60, deadlineSeconds=2).transform(df).collect()
    assert time.monotonic() - started < 10  # the deadline is a hard bound
    assert {r.error.code for r in rows} == {"timeout"}


def test_odd_but_valid_chat_answers_are_final(spark, emulator):
    from spark_aoai.emulator import Faults

    emulator.configure(faults=Faults(content_parts_marker="[parts]", tool_calls_marker="[tool]"))
    texts = ["plain", "[parts] joined", "[tool] call one"]
    df = spark.createDataFrame(list(enumerate(texts)), "id int, prompt string")
    rows = {r.id: r for r in chat_stage(emulator.endpoint).transform(df).collect()}
    assert rows[1].response == chat_reply([{"role": "user", "content": "[parts] joined"}]) and rows[1].error is None
    assert (rows[2].error.status, rows[2].error.code, rows[2].error.attempts) == (200, "tool_call", 1)
    assert emulator.stats()["answered_inputs"]["[tool] call one"] == 1  # billed once, never retried


def test_unusable_vectors_are_asked_for_again_without_losing_their_batch(spark, emulator):
    from spark_aoai.emulator import Faults, embed_text

    emulator.configure(faults=Faults(wrong_dimensions_marker="<<short>>", non_finite_marker="<<nan>>"))
    texts = [f"vector {i}" for i in range(30)] + ["a <<short>> one", "a <<nan>> one"]
    df = spark.createDataFrame(list(enumerate(texts)), "id int, text string").coalesce(1)
    stage = Embedding(
        deploymentName="text-embedding-3-small", inputCol="text", endpoint=emulator.endpoint, maxAttempts=3
    )
    rows = {r.id: r for r in stage.transform(df).collect()}
    for i in range(30):
        assert rows[i].error is None and rows[i].embedding == pytest.approx(embed_text(texts[i], 1536).tolist())
    for i in (30, 31):
        assert rows[i].embedding is None and rows[i].error.code == "malformed_response"
        assert rows[i].error.attempts == 2  # a billed 200 of unknown shape is sent again once, not maxAttempts
    answered = emulator.stats()["inputs"]
    assert all(answered[t] == 1 for t in texts[:30])  # the good ones were not sent (billed) again
    assert answered["a <<short>> one"] == 2


def test_an_unknown_deployment_fails_the_job_within_seconds(spark):
    with Emulator(deployments={"gpt-4o": "gpt-4o"}) as emu:
        stage = chat_stage(emu.endpoint, deploymentName="gtp-4o")
        started = time.monotonic()
        with pytest.raises(Exception) as raised:
            stage.transform(prompts(spark)).collect()
        assert time.monotonic() - started < 30
        error = failure_of(raised.value)
        assert (error["status"], error["code"]) == (404, "DeploymentNotFound")
        assert "deployment 'gtp-4o'" in str(raised.value)
        marked = stage.copy({stage.onSystemicError: "mark"}).transform(prompts(spark)).collect()
        assert len(marked) == 200 and {r.error.code for r in marked} == {"DeploymentNotFound"}
