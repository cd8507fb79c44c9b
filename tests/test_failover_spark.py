"""Failover through Spark (``deployments=[...]``): a primary that is down, refuses, rate-limits or fails beside a
healthy second deployment, each a real emulator over HTTP (#24 points 6, 7, 8)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest
from pyspark.sql import functions as F

from spark_aoai import ChatCompletion, failure_of
from spark_aoai.emulator import Emulator, Faults, chat_reply

ROWS, TASKS, CONCURRENCY = 100, 2, 8
SPARE_KEY = "spare-key-0123456789"


@pytest.fixture
def spare() -> Iterator[Emulator]:
    with Emulator(extra_deployments={"gpt-4o-spare": "gpt-4o"}) as emu:
        yield emu


def prompts(spark):
    return spark.range(0, ROWS, 1, TASKS).select("id", F.concat(F.lit("failover "), F.col("id")).alias("prompt"))


def stage(primary: dict, spare: Emulator, **params) -> ChatCompletion:
    deployments = [primary, {"endpoint": spare.endpoint, "deploymentName": "gpt-4o-spare", "apiKey": SPARE_KEY}]
    settings = {"promptCol": "prompt", "deployments": deployments, "deploymentCol": "answered_by"}
    return ChatCompletion(**{**settings, "concurrency": CONCURRENCY, **params})


def dead_endpoint() -> str:
    with Emulator() as gone:
        endpoint = gone.endpoint
    return endpoint


def sent(emulator: Emulator) -> int:
    return sum(emulator.stats()["requests"].values())


@pytest.mark.parametrize(
    "fault",
    ["connection refused", "404 DeploymentNotFound", "401", "429 retry-after 1", "500",
     pytest.param("404 with onSystemicError=mark", id="404-mark")],
)  # fmt: skip
def test_every_row_is_answered_once_by_the_healthy_deployment(spark, emulator, spare, fault):
    primary = {"endpoint": emulator.endpoint, "deploymentName": "gpt-4o", "apiKey": "primary-key-0123456789"}
    params = {}
    if fault == "connection refused":
        primary["endpoint"] = dead_endpoint()
    elif fault.startswith("404"):
        primary["deploymentName"] = "no-such-deployment"
        params = {"onSystemicError": "mark"} if "mark" in fault else {}
    elif fault == "401":
        emulator.configure(api_key="the-right-key-0123456789")
    elif fault.startswith("429"):
        emulator.configure(faults=Faults(quota_429_rate=1.0, quota_retry_after_seconds=1))
    else:
        emulator.configure(faults=Faults(error_500_rate=1.0))
    started = time.monotonic()
    rows = stage(primary, spare, **params).transform(prompts(spark)).collect()
    assert time.monotonic() - started < 30  # before: 185 s (429), 257 s (500), or a failed job (down)
    assert sorted(r.id for r in rows) == list(range(ROWS))
    assert {(r.error, r.answered_by) for r in rows} == {(None, "gpt-4o-spare")}
    assert all(r.response == chat_reply([{"role": "user", "content": r.prompt}]) for r in rows)
    assert Counter(spare.stats()["answered_inputs"]) == Counter(r.prompt for r in rows)  # each row once
    # down: what was in flight in each task; 429/500: until each task's breaker opened (10 outcomes), 1,002 before
    assert sent(emulator) <= TASKS * (CONCURRENCY + 10)


def test_every_deployment_down_fails_the_job_naming_each_or_marks_every_row(spark, emulator, spare):
    spare.configure(api_key="the-right-key-0123456789")
    primary = {"endpoint": emulator.endpoint, "deploymentName": "no-such-deployment", "apiKey": "primary-key-01234"}
    failing = stage(primary, spare)
    started = time.monotonic()
    with pytest.raises(Exception) as raised:
        failing.transform(prompts(spark)).collect()
    assert time.monotonic() - started < 30
    error = failure_of(raised.value)
    assert error is not None and error["message"].startswith("every deployment is down: ")
    assert (
        "deployment 'no-such-deployment'" in error["message"] and "DeploymentNotFound (status 404)" in error["message"]
    )
    assert "deployment 'gpt-4o-spare'" in error["message"] and "401 (status 401)" in error["message"]
    for secret in ("primary-key-01234", SPARE_KEY, "the-right-key-0123456789"):
        assert secret not in str(raised.value)
    rows = failing.copy({failing.onSystemicError: "mark"}).transform(prompts(spark)).collect()
    assert len(rows) == ROWS and all(r.response is None for r in rows)
    assert {r.error.message.split(":")[0] for r in rows} == {"every deployment is down"}
