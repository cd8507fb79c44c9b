"""The response cache, dedup, failover and the quota stop in the engine, without Spark: real HTTP to the emulator."""

from __future__ import annotations

import dataclasses
import os
import time
from collections import Counter

import pytest

from spark_aoai import _constants as C
from spark_aoai._auth import ApiKey, Secret
from spark_aoai._cache import CacheFactory, cache_key, entry_name
from spark_aoai._config import ClientConfig, Limits, resolve_endpoint
from spark_aoai._contract import CACHED, Route, Usage
from spark_aoai._operations import ChatOperation
from spark_aoai._partition import run_partition
from spark_aoai._retry import RetryPolicy
from spark_aoai._wire import chat as chat_wire
from spark_aoai.emulator import Emulator, Faults, chat_reply

ROUTE = chat_wire.ROUTE


def config(endpoint: str, deployment: str = "gpt-4o", failover: tuple[ClientConfig, ...] = (), **retry: object):
    return ClientConfig(
        endpoint=resolve_endpoint(endpoint),
        deployment=deployment,
        credential=ApiKey(Secret("test-key")),
        retry=RetryPolicy(**{"max_attempts": 3, "base_delay": 0.01, "max_delay": 0.05, **retry}),  # type: ignore[arg-type]
        limits=Limits(concurrency=8),
        failover=failover,
    )


def chat(cfg: ClientConfig, prompts: list[str], hooks=None, dedup: bool = False, batches: int = 1):
    size = -(-len(prompts) // batches)
    work = ((prompts[i : i + size], None) for i in range(0, len(prompts), size))
    out = list(run_partition(work, ChatOperation(model=None), cfg, hooks, dedup))
    columns = ((r.values, r.errors, r.usage, r.sources) for r, _ in out)
    return [row for values in columns for row in zip(*values, strict=True)]


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ((ROUTE, "gpt-4o", {"messages": [1], "temperature": 0}), (ROUTE, "gpt-4o", {"temperature": 0, "messages": [1]}),
         True),
        ((ROUTE, "gpt-4o", {"messages": [1]}), (ROUTE, "gpt-4o-mini", {"messages": [1]}), False),
        ((ROUTE, "gpt-4o", {"messages": [1]}), (Route("responses"), "gpt-4o", {"messages": [1]}), False),
        ((ROUTE, "gpt-4o", {"messages": [1], "seed": 1}), (ROUTE, "gpt-4o", {"messages": [1], "seed": 2}), False),
    ],
)  # fmt: skip
def test_the_key_is_route_deployment_and_canonical_body(a, b, same):
    assert (cache_key(*a) == cache_key(*b)) is same
    assert len(cache_key(*a)) == 64


def test_a_second_run_sends_nothing_and_gives_the_same_answers(emulator, tmp_path):
    cfg = config(emulator.endpoint)
    prompts = [f"cache me {i}" for i in range(120)]
    factory = CacheFactory(str(tmp_path), ROUTE, "gpt-4o")
    first_hooks = factory.open()
    first = chat(cfg, prompts, first_hooks, batches=3)
    assert emulator.stats()["requests"] == {"chat 200": 120}
    assert first_hooks.stored == 120 and first_hooks.misses == 120
    assert {source for *_, source in first} == {"gpt-4o"}
    emulator.reset_stats()
    again_hooks = factory.open()
    again = chat(cfg, prompts, again_hooks, batches=3)
    assert emulator.stats()["requests"] == {}
    assert again_hooks.hits == 120
    expected = [chat_reply([{"role": "user", "content": p}]) for p in prompts]
    assert [v for v, *_ in again] == [v for v, *_ in first] == expected
    assert {source for *_, source in again} == {CACHED}
    assert all(u == Usage(0, 0, 0, u.cached_tokens, u.reasoning_tokens) for _, _, u, _ in again)  # type: ignore[arg-type]


def test_errors_are_not_stored_and_are_sent_again(emulator, tmp_path):
    emulator.configure(faults=Faults(content_filter_marker="BAD"))
    cfg = config(emulator.endpoint)
    prompts = ["fine 1", "BAD one", "fine 2"]
    factory = CacheFactory(str(tmp_path), ROUTE, "gpt-4o")
    codes = [e.code if e else None for _, e, _, _ in chat(cfg, prompts, factory.open())]
    assert codes == [None, "content_filter", None]
    emulator.reset_stats()
    chat(cfg, prompts, factory.open())
    assert emulator.stats()["inputs"] == {"BAD one": 1}


def test_answers_are_written_in_increments_while_the_task_runs(emulator, tmp_path, monkeypatch):
    monkeypatch.setattr(C, "CACHE_FLUSH_ANSWERS", 10)
    monkeypatch.setattr(C, "CACHE_FLUSH_SECONDS", 3600.0)  # by count only: the timer is not under test here
    hooks = CacheFactory(str(tmp_path), ROUTE, "gpt-4o").open()
    prompts = [f"increment {i}" for i in range(35)]
    one_sender = dataclasses.replace(config(emulator.endpoint), limits=Limits(concurrency=1))  # exact increments
    chat(one_sender, prompts, hooks=_NotClosing(hooks))
    on_disk = [f for _, _, files in os.walk(tmp_path) for f in files if f.endswith(".json") and "probe" not in f]
    assert len(on_disk) == 30  # three increments of 10 are on disk before close; the last 5 wait for it
    assert not [f for _, _, files in os.walk(tmp_path) for f in files if f.endswith(".tmp")]
    hooks.close()
    key = cache_key(ROUTE, "gpt-4o", ChatOperation(model=None).plan(["increment 34"], _results(1))[0].payload)
    assert (tmp_path / C.CACHE_FORMAT / entry_name(key)).exists()


class _NotClosing:
    """Hooks whose close is withheld: what a killed task leaves behind."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def close(self) -> None:
        pass


def _results(n: int):
    from spark_aoai._contract import RowResults

    return RowResults(n)


def test_dedup_sends_each_distinct_prompt_once(emulator):
    emulator.configure(faults=Faults(latency_ms=20))
    distinct = [f"unique {i}" for i in range(140)]
    prompts = distinct + [distinct[i * 7 % 140] for i in range(60)]  # 30% of the rows repeat a prompt
    rows = chat(config(emulator.endpoint), prompts, dedup=True, batches=4)
    assert sum(emulator.stats()["requests"].values()) == 140
    assert [v for v, *_ in rows] == [chat_reply([{"role": "user", "content": p}]) for p in prompts]
    assert all(e is None for _, e, _, _ in rows)
    billed = [u.total_tokens for _, _, u, _ in rows]
    assert all(b > 0 for b in billed[:140]) and billed[140:] == [0] * 60  # only the first of each paid
    emulator.reset_stats()
    chat(config(emulator.endpoint), prompts, dedup=False, batches=4)
    assert sum(emulator.stats()["requests"].values()) == 200


def test_a_duplicate_of_a_failed_request_gets_its_error(emulator):
    emulator.configure(faults=Faults(content_filter_marker="BAD"))
    rows = chat(config(emulator.endpoint), ["BAD x", "BAD x", "ok"], dedup=True)
    assert [e.code if e else None for _, e, _, _ in rows] == ["content_filter", "content_filter", None]
    assert emulator.stats()["inputs"] == {"BAD x": 1, "ok": 1}


@pytest.mark.parametrize(
    "faults",
    [Faults(quota_429_rate=1.0, quota_retry_after_seconds=86400), Faults(capacity_429_rate=1.0)],
    ids=["azure-retry-after-86400", "fabric-capacity"],
)
def test_an_exhausted_quota_stops_the_task_at_once(emulator, faults):
    emulator.configure(faults=faults)
    started = time.monotonic()
    rows = chat(config(emulator.endpoint, max_attempts=10), [f"q {i}" for i in range(200)], batches=2)
    assert time.monotonic() - started < 10
    assert {(e.status, e.code) for _, e, _, _ in rows} == {(429, "quota_exceeded")}
    assert sum(emulator.stats()["requests"].values()) <= 8  # only what was in flight


@pytest.mark.parametrize(
    "faults",
    [Faults(quota_429_rate=1.0, quota_retry_after_seconds=86400), Faults(capacity_429_rate=1.0),
     Faults(error_503_rate=1.0)],
    ids=["quota", "capacity", "503-after-its-attempts"],
)  # fmt: skip
def test_failover_answers_every_row_from_the_next_deployment(emulator, faults):
    emulator.configure(faults=faults)
    with Emulator(extra_deployments={"gpt-4o-spare": "gpt-4o"}) as spare:
        cfg = config(emulator.endpoint, failover=(config(spare.endpoint, "gpt-4o-spare"),))
        prompts = [f"spill {i}" for i in range(200)]
        started = time.monotonic()
        rows = chat(cfg, prompts, batches=2)
        assert time.monotonic() - started < 20
        assert [v for v, *_ in rows] == [chat_reply([{"role": "user", "content": p}]) for p in prompts]
        assert {source for *_, source in rows} == {"gpt-4o-spare"}
        assert set(Counter(spare.stats()["answered_inputs"]).values()) == {1}  # each row answered once
    refused = sum(emulator.stats()["requests"].values())
    # a quota refusal rests the deployment (in-flight requests only); a 503 costs each request its attempts
    assert refused <= (8 if faults.error_503_rate == 0 else 200 * 3)
