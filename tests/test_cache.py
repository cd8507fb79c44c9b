"""The response cache, dedup, failover and the quota stop in the engine, without Spark: real HTTP to the emulator."""

from __future__ import annotations

import dataclasses
import os
import time
from collections import Counter

import pytest

from spark_aoai._client.auth import ApiKey, Secret
from spark_aoai._client.config import ClientConfig, Limits, resolve_endpoint
from spark_aoai._client.retry import RetryPolicy
from spark_aoai._core import constants as C
from spark_aoai._core.contract import CACHED, Route, Usage
from spark_aoai._engine.partition import run_partition
from spark_aoai._features.cache import CacheFactory, cache_key, entry_name
from spark_aoai._planning.operations import ChatOperation
from spark_aoai._wire import chat as chat_wire
from spark_aoai._wire import embeddings as embeddings_wire
from spark_aoai._wire import responses as responses_wire
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


# Pinned bytes: a cache key names an entry on disk and a batch line's custom_id, so a change of these values
# orphans every user's cache and every submitted batch. Never update them to make a test pass.
GOLDEN_KEYS = [
    ((ROUTE, "gpt-4o", {"messages": [{"role": "user", "content": "hello"}]}),
     "c2a6cfdc185ea69277257bed992d91363a627a2e581d43404769c6a7b4e57728"),
    ((ROUTE, "gpt-4o-mini", {"messages": [{"role": "system", "content": "Be brief."},
                                          {"role": "user", "content": "na\u00efve caf\u00e9 \u2615"}],
                             "temperature": 0,
                             "response_format": {"type": "json_schema", "json_schema": {
                                 "name": "output", "schema": {"type": "object"}, "strict": True}}}),
     "b6d83e0f526a178170dfbbc99775f7a163a5ef2a01034d63706a70c09c89db8b"),
    ((embeddings_wire.ROUTE, "text-embedding-3-small", {"input": ["a", "b"], "dimensions": 256}),
     "31f6ce358c221485a0b327edc1a504b6fc1abfa4c6bba7b61906c0d2135f63d0"),
    ((responses_wire.ROUTE, "gpt-4o", {"input": [{"role": "user", "content": "hi"}], "max_output_tokens": 16}),
     "c5cf09a4a5672d1de8420b5488053a6f5c5ca59e0e138d2d8d4ae3d3fb52f3bb"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("request_", "key"), GOLDEN_KEYS, ids=["chat", "chat-unicode-schema", "embeddings", "responses"]
)
def test_cache_keys_are_pinned_bytes(request_, key):
    assert cache_key(*request_) == key


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
    from spark_aoai._core.contract import RowResults

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


# -- entries are hostile bytes (#23.5), a failing store (#23.7), re-asks stored for the row's own request (#23.8) --


def _entry_paths(root) -> list:
    return sorted(p for p in (root / C.CACHE_FORMAT).rglob("*.json") if "probe" not in p.parts)


def _warnings(caplog, words: str) -> int:
    return sum(words in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def _right(rows, prompts) -> bool:
    return [v for v, *_ in rows] == [chat_reply([{"role": "user", "content": p}]) for p in prompts] and all(
        e is None for _, e, _, _ in rows
    )


def test_swapped_entries_are_misses_asked_again_and_stored_right(emulator, tmp_path, caplog):
    cfg, factory = config(emulator.endpoint), CacheFactory(str(tmp_path), ROUTE, "gpt-4o")
    prompts = [f"swap me {i}" for i in range(40)]
    assert _right(chat(cfg, prompts, factory.open()), prompts)
    paths = _entry_paths(tmp_path)
    assert len(paths) == 40
    contents = [p.read_bytes() for p in paths]
    for path, data in zip(paths, contents[1:] + contents[:1], strict=True):  # each file holds its neighbour's
        path.write_bytes(data)
    emulator.reset_stats()
    hooks = factory.open()
    rows = chat(cfg, prompts, hooks)
    assert _right(rows, prompts)  # not one row takes another request's answer
    assert emulator.stats()["requests"] == {"chat 200": 40} and hooks.unusable == 40 and hooks.hits == 0
    assert {source for *_, source in rows} == {"gpt-4o"}
    assert _warnings(caplog, "response cache entry") == 1  # once per task, not per row
    billed = emulator.stats(inputs=False)["billed_tokens"]
    assert sum(u.total_tokens for _, _, u, _ in rows) == billed  # the usage is what was billed again
    emulator.reset_stats()
    assert _right(chat(cfg, prompts, factory.open()), prompts)  # stored again, right this time
    assert emulator.stats()["requests"] == {}


def _damage(kind: str, path, root) -> None:
    if kind == "directory":
        path.unlink()
        path.mkdir()
    elif kind == "file_for_folder":  # the entry's folder (ab/cd) is a file
        folder = path.parent
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()
        folder.write_bytes(b"not a folder")
    elif kind == "garbage":
        path.write_bytes(os.urandom(300))
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[:-7])
    elif kind == "huge":
        path.write_bytes(b" " * 4096 + path.read_bytes())
    elif kind == "first_format":  # the bare answer, as the first version stored it
        import json

        path.write_bytes(json.dumps(json.loads(path.read_bytes())["answer"]).encode())
    elif kind == "deep":
        path.write_bytes(b"[" * 100_000 + b"]" * 100_000)


@pytest.mark.parametrize(
    "kind", ["directory", "file_for_folder", "garbage", "truncated", "huge", "first_format", "deep"]
)
def test_an_unusable_entry_is_a_miss_with_one_warning_never_a_failed_task(
    emulator, tmp_path, caplog, monkeypatch, kind
):
    monkeypatch.setattr(C, "CACHE_MAX_ENTRY_BYTES", 4000)  # "huge" is over it, the others under
    cfg, factory = config(emulator.endpoint), CacheFactory(str(tmp_path), ROUTE, "gpt-4o")
    prompts = [f"damage me {i}" for i in range(30)]
    chat(cfg, prompts, factory.open())
    damaged = _entry_paths(tmp_path)[:5]
    for path in damaged:
        if path.exists():
            _damage(kind, path, tmp_path)
    emulator.reset_stats()
    hooks = factory.open()
    rows = chat(cfg, prompts, hooks)
    assert _right(rows, prompts)
    asked = sum(emulator.stats()["requests"].values())
    assert asked == hooks.unusable and 1 <= asked <= 5 and hooks.hits == 30 - asked
    assert _warnings(caplog, "response cache entry") == 1
    assert sum(u.total_tokens for _, _, u, _ in rows) == emulator.stats(inputs=False)["billed_tokens"]
    # the new answers replace the damaged entries, except under a file where a folder should be (not removed)
    assert hooks.unstored == (asked if kind == "file_for_folder" else 0)
    emulator.reset_stats()
    assert _right(chat(cfg, prompts, factory.open()), prompts)
    assert sum(emulator.stats()["requests"].values()) == (asked if kind == "file_for_folder" else 0)


class _BreaksAfter:
    """The cache's hooks, whose directory is replaced by a file once ``after`` answers were offered to it."""

    def __init__(self, inner, root, after: int) -> None:
        self.inner, self.root, self.after, self.offered = inner, root, after, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def store(self, unit, body) -> None:
        self.offered += 1
        if self.offered == self.after:
            folder = self.root / C.CACHE_FORMAT
            folder.rename(self.root / "gone")
            folder.write_bytes(b"the mount went away")
        self.inner.store(unit, body)


def test_a_store_that_fails_mid_job_loses_no_answer(emulator, tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(C, "CACHE_FLUSH_ANSWERS", 10)
    monkeypatch.setattr(C, "CACHE_FLUSH_SECONDS", 3600.0)
    cfg = dataclasses.replace(config(emulator.endpoint), limits=Limits(concurrency=1))  # exact increments
    inner = CacheFactory(str(tmp_path), ROUTE, "gpt-4o").open()
    prompts = [f"store fails {i}" for i in range(80)]
    rows = chat(cfg, prompts, _BreaksAfter(inner, tmp_path, after=25), batches=4)
    assert _right(rows, prompts)  # every answer is returned although most could not be stored
    assert inner.stored == 20 and inner.unstored == 60  # two increments written before the directory went
    assert _warnings(caplog, "cannot store an answer") == 1
    assert emulator.stats()["requests"] == {"chat 200": 80}
    assert sum(u.total_tokens for _, _, u, _ in rows) == emulator.stats(inputs=False)["billed_tokens"]


def test_a_re_asked_structured_answer_is_stored_for_the_rows_own_request(emulator, tmp_path):
    from spark_aoai._planning.structured import Shape, StructuredOutput, obj

    structured = StructuredOutput(obj([("label", Shape("string", nullable=False)), ("score", Shape("number"))]))
    operation = ChatOperation(model=None, structured=structured, output_retries=3)
    factory = CacheFactory(str(tmp_path), ROUTE, "gpt-4o")
    prompts = [f"classify {i}" for i in range(40)]

    def run():
        work = iter([(prompts, None)])
        ((results, _),) = run_partition(work, operation, config(emulator.endpoint), factory.open())
        return results

    emulator.configure(faults=Faults(bad_structured_rate=0.5, seed=5))
    first = run()
    reasks = emulator.stats()["requests"]["chat 200"] - 40
    failed = {p for p, error in zip(prompts, first.errors, strict=True) if error is not None}
    assert reasks >= 10 and reasks > 3 * len(failed)  # so some rows were answered after a re-ask
    assert {first.sources[i] for i, p in enumerate(prompts) if p not in failed} == {"gpt-4o"}
    emulator.configure(faults=Faults())
    emulator.reset_stats()
    again = run()
    # only the invalid_output rows are sent again (errors are not stored): every answer, re-asked or not, is found
    assert emulator.stats()["requests"].get("chat 200", 0) == len(failed)
    assert set(emulator.stats()["inputs"]) == failed
    assert all(again.errors[i] is None for i in range(40))
    kept = [i for i, p in enumerate(prompts) if p not in failed]
    assert [again.values[i] for i in kept] == [first.values[i] for i in kept]
    assert {again.sources[i] for i in kept} == {CACHED} and {again.usage[i].total_tokens for i in kept} == {0}


def test_the_statistics_hooks_count_cached_rows_and_unstored_answers(emulator, tmp_path):
    from spark_aoai._engine.hooks import ComposedHooks
    from spark_aoai._features.stats import StatsFactory

    cfg, cache = config(emulator.endpoint), CacheFactory(str(tmp_path / "cache"), ROUTE, "gpt-4o")
    stats = StatsFactory(str(tmp_path / "stats"), "run")
    prompts = [f"counted {i}" for i in range(50)]
    chat(cfg, prompts, ComposedHooks([cache.open(), stats.open()]))
    emulator.reset_stats()
    cached = ComposedHooks([cache.open(), stats.open()])
    assert _right(chat(cfg, prompts, cached, batches=2), prompts) and emulator.stats()["requests"] == {}
    assert cached.hooks[1].record()["rows_done"] == 50  # every hook saw the units the cache answered
    (tmp_path / "cache" / C.CACHE_FORMAT).rename(tmp_path / "gone")
    (tmp_path / "cache" / C.CACHE_FORMAT).write_text("")
    failing = ComposedHooks([cache.open(), stats.open()])
    assert _right(chat(cfg, prompts, failing), prompts)
    assert failing.hooks[1].record()["unstored"] == 50


def test_the_driver_check_of_a_directory_leaves_nothing_behind(tmp_path):
    from spark_aoai._features.cache import check_directory
    from spark_aoai._spark.batch_job import BATCH_FOLDER
    from spark_aoai.exceptions import ConfigurationError

    for folder, param in ((C.CACHE_FORMAT, "cacheDir"), (BATCH_FOLDER, "batchDir"), ("", "statisticsDir")):
        check_directory(str(tmp_path / param), folder, param)
        assert [p for p in (tmp_path / param).rglob("*") if p.is_file() or p.name == "probe"] == []
        (tmp_path / f"{param}-file").write_text("")
        with pytest.raises(ConfigurationError, match=f"^{param} .* cannot be written"):
            check_directory(str(tmp_path / f"{param}-file"), folder, param)
