"""Failover (``deployments=[...]``) in the engine, without Spark: a primary that is down, refuses, rate-limits or
fails, and a healthy second deployment, each a real emulator over HTTP (#24 points 6, 7, 8)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

import pytest

from spark_aoai._client.auth import ApiKey, Secret
from spark_aoai._client.config import ClientConfig, Limits, resolve_endpoint
from spark_aoai._client.retry import RetryPolicy
from spark_aoai._core import constants as C
from spark_aoai._engine.partition import run_partition
from spark_aoai._planning.operations import ChatOperation
from spark_aoai.emulator import Emulator, Faults, chat_reply
from spark_aoai.exceptions import SystemicError

PRIMARY_KEY, SPARE_KEY = "primary-key-0123456789", "spare-key-0123456789"


def target(endpoint: str, deployment: str, key: str) -> ClientConfig:
    return ClientConfig(
        endpoint=resolve_endpoint(endpoint),
        deployment=deployment,
        credential=ApiKey(Secret(key)),
        retry=RetryPolicy(),  # the defaults: 10 attempts, backoff from 0.5 s to 30 s
        limits=Limits(concurrency=8),
    )


def failover(*targets: ClientConfig, mark: bool = False) -> ClientConfig:
    first, *rest = targets
    return ClientConfig(**{**first.__dict__, "failover": tuple(rest), "fail_on_systemic": not mark})


def run(cfg: ClientConfig, batches: Iterator[list[str]]) -> list[tuple]:
    out = run_partition(((b, None) for b in batches), ChatOperation(model=None), cfg)
    return [row for r, _ in out for row in zip(r.values, r.errors, r.sources, strict=True)]


def prompts(n: int = 100, tag: str = "row") -> list[str]:
    return [f"{tag} {i}" for i in range(n)]


def answers(items: list[str]) -> list[str]:
    return [chat_reply([{"role": "user", "content": p}]) for p in items]


def sent(emulator: Emulator) -> int:
    return sum(emulator.stats()["requests"].values())


@pytest.fixture
def spare() -> Iterator[Emulator]:
    with Emulator(extra_deployments={"gpt-4o-spare": "gpt-4o"}) as emu:
        yield emu


def dead_endpoint() -> str:
    with Emulator() as gone:  # started and stopped: nothing listens on its port any more
        endpoint = gone.endpoint
    return endpoint


def check_spare_answered_each_row_once(rows: list[tuple], items: list[str], spare: Emulator) -> None:
    assert [value for value, *_ in rows] == answers(items)
    assert {(error, source) for _, error, source in rows} == {(None, "gpt-4o-spare")}
    assert Counter(spare.stats()["answered_inputs"]) == Counter(items)  # every row exactly once


# -- 6. a primary that is systemically down: its rows move on; the task fails only once all are down ----------


@pytest.mark.parametrize("fault", ["connection refused", "404 DeploymentNotFound", "401"])
@pytest.mark.parametrize("mark", [False, True], ids=["fail", "mark"])
def test_a_primary_that_is_down_hands_every_row_to_the_next_deployment(emulator, spare, fault, mark):
    endpoint, deployment = emulator.endpoint, "gpt-4o"
    if fault == "connection refused":
        endpoint = dead_endpoint()
    elif fault == "404 DeploymentNotFound":
        deployment = "no-such-deployment"
    else:
        emulator.configure(api_key="the-right-key-0123456789")
    cfg = failover(target(endpoint, deployment, PRIMARY_KEY), target(spare.endpoint, "gpt-4o-spare", SPARE_KEY),
                   mark=mark)  # fmt: skip
    items = prompts()
    started = time.monotonic()
    rows = run(cfg, iter([items[:50], items[50:]]))
    assert time.monotonic() - started < 10
    check_spare_answered_each_row_once(rows, items, spare)
    assert sent(emulator) <= 8  # only what was in flight when the first refusal came back (concurrency 8)


@pytest.mark.parametrize("mark", [False, True], ids=["fail", "mark"])
def test_when_every_deployment_is_down_the_error_names_each_one_and_its_fault(emulator, spare, mark):
    spare.configure(api_key="the-right-key-0123456789")
    dead = dead_endpoint()
    cfg = failover(
        target(emulator.endpoint, "no-such-deployment", PRIMARY_KEY),  # 404
        target(spare.endpoint, "gpt-4o-spare", SPARE_KEY),  # 401
        target(dead, "gpt-4o-third", "third-key-0123456789"),  # connection refused
        mark=mark,
    )
    started = time.monotonic()
    if not mark:
        with pytest.raises(SystemicError) as raised:
            run(cfg, iter([prompts()]))
        message = str(raised.value)
    else:
        rows = run(cfg, iter([prompts()]))
        assert len(rows) == 100 and all(value is None for value, *_ in rows)
        assert len({error.message for _, error, _ in rows}) == 1
        message = rows[0][1].message
    assert time.monotonic() - started < 10

    def host(endpoint: str) -> str:
        return endpoint.split("//")[1]

    assert "every deployment is down" in message
    assert f"deployment 'no-such-deployment' at {host(emulator.endpoint)}: DeploymentNotFound (status 404)" in message
    assert f"deployment 'gpt-4o-spare' at {host(spare.endpoint)}: 401 (status 401)" in message
    assert f"deployment 'gpt-4o-third' at {host(dead)}: connection_error (status None)" in message
    for secret in (PRIMARY_KEY, SPARE_KEY, "third-key-0123456789", "the-right-key-0123456789"):
        assert secret not in message
    assert sent(emulator) <= 8 and sent(spare) <= 8


# -- 7. a rate-limited primary: its 429s slow only itself, and its rows move on ------------------------------------


def test_a_rate_limited_primary_hands_its_rows_over_and_does_not_slow_the_next(emulator, spare):
    emulator.configure(faults=Faults(quota_429_rate=1.0, quota_retry_after_seconds=1))  # 429, retry-after: 1
    cfg = failover(target(emulator.endpoint, "gpt-4o", PRIMARY_KEY), target(spare.endpoint, "gpt-4o-spare", SPARE_KEY))
    items = prompts(200)
    started = time.monotonic()
    rows = run(cfg, iter([items[:100], items[100:]]))
    took = time.monotonic() - started
    check_spare_answered_each_row_once(rows, items, spare)
    assert set(emulator.stats()["requests"]) == {"chat 429"}
    assert sent(emulator) < 40  # far below 200 rows x 10 attempts: its breaker opened, then a probe per 5 s
    assert took < 10  # 200 rows at the spare's own pace (a shared pace would have crawled at ~0.5 request/s)


def test_a_primary_paced_below_its_breakers_minimum_still_hands_its_rows_over(emulator, spare):
    # one request in flight: after its first 429 the primary is paced at RATE_MIN_PACE (one request per 5 s), so
    # its breaker never sees BREAKER_MIN_OUTCOMES outcomes within BREAKER_WINDOW_SECONDS and never opens; before,
    # every row crawled through 10 refused attempts there (CI: 512 s, then the slow-start clock overflowed)
    emulator.configure(faults=Faults(quota_429_rate=1.0, quota_retry_after_seconds=1))
    primary = target(emulator.endpoint, "gpt-4o", PRIMARY_KEY)
    cfg = failover(replace(primary, limits=Limits(concurrency=1)), target(spare.endpoint, "gpt-4o-spare", SPARE_KEY))
    items = prompts(20)
    started = time.monotonic()
    rows = run(cfg, iter([items]))
    assert time.monotonic() - started < 30  # 20 rows one at a time on the spare; the old path hung for minutes
    check_spare_answered_each_row_once(rows, items, spare)
    assert sent(emulator) <= 4  # the first refusal, and a retry of a row that waited for it


# -- 8. a primary answering 500: its breaker opens, new rows go to the next at once, a probe now and then --------


def test_a_failing_primary_costs_few_requests_and_little_time(emulator, spare):
    emulator.configure(faults=Faults(error_500_rate=1.0))
    cfg = failover(target(emulator.endpoint, "gpt-4o", PRIMARY_KEY), target(spare.endpoint, "gpt-4o-spare", SPARE_KEY))
    items = prompts(100)
    started = time.monotonic()
    rows = run(cfg, iter([items[:50], items[50:]]))
    assert time.monotonic() - started < 10  # not each row's retry schedule (257 s before the breaker)
    check_spare_answered_each_row_once(rows, items, spare)
    assert emulator.stats()["requests"] == {"chat 500": sent(emulator)}
    assert sent(emulator) <= 2 * C.BREAKER_MIN_OUTCOMES  # far below 100 rows x 10 attempts (1,002 before)


def test_a_primary_that_recovers_gets_new_rows_again_after_a_successful_probe(emulator, spare):
    emulator.configure(faults=Faults(error_500_rate=1.0))
    cfg = failover(target(emulator.endpoint, "gpt-4o", PRIMARY_KEY), target(spare.endpoint, "gpt-4o-spare", SPARE_KEY))
    early, late = prompts(40, "early"), prompts(40, "late")

    def batches() -> Iterator[list[str]]:
        yield early
        deadline = time.monotonic() + 10
        while sum(Counter(spare.stats()["answered_inputs"]).values()) < len(early):  # the spare took them all
            assert time.monotonic() < deadline
            time.sleep(0.05)
        emulator.configure(faults=Faults(latency_ms=20))  # the primary heals while its breaker is open
        spare.configure(faults=Faults(latency_ms=20))
        time.sleep(C.BREAKER_OPEN_SECONDS + 0.5)  # then a new row probes it
        yield late

    rows = run(cfg, batches())
    assert [value for value, *_ in rows] == answers(early + late) and all(e is None for _, e, _ in rows)
    assert {source for *_, source in rows[:40]} == {"gpt-4o-spare"}
    late_sources = Counter(source for *_, source in rows[40:])
    # the probe closed the breaker: the rows after it go to the primary (those taken while it was out, to the spare)
    assert late_sources["gpt-4o"] >= 20 and {source for *_, source in rows[-10:]} == {"gpt-4o"}
    both = Counter(emulator.stats()["answered_inputs"]) + Counter(spare.stats()["answered_inputs"])
    assert both == Counter(early + late)  # every row answered exactly once
