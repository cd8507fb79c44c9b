"""The partition engine without Spark: real HTTP to the emulator, faults on, every row resolved once."""

from __future__ import annotations

import threading
from collections import Counter

import numpy as np
import pytest

from spark_aoai._client.auth import ApiKey, Secret
from spark_aoai._client.config import ClientConfig, Limits, resolve_endpoint
from spark_aoai._client.retry import RetryPolicy
from spark_aoai._engine.partition import run_partition
from spark_aoai._planning.operations import ChatOperation, EmbeddingOperation, VectorCache, pack
from spark_aoai.emulator import Faults, RateLimit, chat_reply, embed_text
from spark_aoai.exceptions import RequestFailedError

FAST_RETRY = RetryPolicy(max_attempts=12, base_delay=0.01, max_delay=0.2)


def config(endpoint: str, deployment: str = "gpt-4o", **limits: object) -> ClientConfig:
    return ClientConfig(
        endpoint=resolve_endpoint(endpoint),
        deployment=deployment,
        credential=ApiKey(Secret("test-key")),
        retry=FAST_RETRY,
        limits=Limits(**{"concurrency": 8, **limits}),  # type: ignore[arg-type]
    )


def run_chat(endpoint: str, batches: list[list[object]], **limits: object):
    operation = ChatOperation(model=None)
    return list(run_partition(((b, i) for i, b in enumerate(batches)), operation, config(endpoint, **limits)))


def test_fault_free_chat_sends_one_request_per_prompt_and_keeps_order(emulator):
    batches = [[f"prompt {b}-{i}" for i in range(50)] for b in range(3)]
    out = run_chat(emulator.endpoint, batches)
    assert [context for _, context in out] == [0, 1, 2]
    for (results, _), prompts in zip(out, batches, strict=True):
        assert results.values == [chat_reply([{"role": "user", "content": p}]) for p in prompts]
        assert results.errors == [None] * len(prompts)
    stats = emulator.stats()
    assert stats["requests"] == {"chat 200": 150}
    assert set(Counter(stats["inputs"]).values()) == {1}


def test_chat_under_faults_loses_and_mixes_nothing(emulator):
    emulator.configure(
        faults=Faults(
            error_500_rate=0.15,
            error_503_rate=0.1,
            drop_rate=0.05,
            malformed_rate=0.05,
            latency_ms=5,
            jitter=0.9,
            seed=7,
        )
    )
    prompts = [f"faulty {i}" for i in range(200)]
    ((results, _),) = run_chat(emulator.endpoint, [prompts])
    assert results.errors == [None] * 200
    assert results.values == [chat_reply([{"role": "user", "content": p}]) for p in prompts]
    answered = emulator.stats()["answered_inputs"]
    assert all(answered[p] == 1 for p in prompts)  # no prompt answered twice


def test_invalid_rows_fail_without_a_request(emulator):
    ((results, _),) = run_chat(emulator.endpoint, [[None, "", "   ", 42, "ok", []]])
    codes = [e.code if e else None for e in results.errors]
    assert codes == ["invalid_input"] * 4 + [None, "invalid_input"]
    assert emulator.stats()["requests"] == {"chat 200": 1}


def test_retries_give_up_with_an_error_value(emulator):
    emulator.configure(faults=Faults(error_503_rate=1.0))
    ((results, _),) = run_chat(emulator.endpoint, [["a", "b"]])
    for error in results.errors:
        assert error is not None
        assert (error.status, error.code, error.attempts) == (503, "ServiceUnavailable", 12)
        assert error.request_id


def test_deadline_turns_slow_rows_into_timeouts(emulator):
    emulator.configure(faults=Faults(latency_ms=3000))
    ((results, _),) = run_chat(emulator.endpoint, [["a", "b", "c"]], deadline_seconds=0.5)
    assert [e.code for e in results.errors] == ["timeout"] * 3


def test_fail_fast_raises(emulator):
    emulator.configure(faults=Faults(content_filter_marker="BAD"))
    operation = ChatOperation(model=None)
    cfg = config(emulator.endpoint)
    cfg = ClientConfig(**{**cfg.__dict__, "fail_on_error": True})
    with pytest.raises(RequestFailedError, match="content_filter"):
        list(run_partition(iter([(["fine", "BAD"], None)]), operation, cfg))


def embed(endpoint: str, batches: list[list[object]], batch_size: int = 100, **limits: object):
    operation = EmbeddingOperation(model=None, batch_size=batch_size)
    cfg = config(endpoint, "text-embedding-3-small", **limits)
    return list(run_partition(((b, None) for b in batches), operation, cfg))


def test_embeddings_batch_dedup_and_place_by_index(emulator):
    emulator.configure(faults=Faults(shuffle_embeddings=True, seed=3))
    texts = [f"text number {i % 150}" for i in range(300)]
    ((results, _),) = embed(emulator.endpoint, [texts], batch_size=64)
    for text, vector in zip(texts, results.values, strict=True):
        np.testing.assert_array_equal(vector, embed_text(text, 1536))
    stats = emulator.stats()
    assert set(stats["inputs"].values()) == {1}  # each distinct text sent once
    assert sorted(stats["inputs_per_request"]) == [22, 64, 64]


def test_one_bad_input_does_not_sink_its_batch(emulator):
    emulator.configure(faults=Faults(content_filter_marker="<<bad>>", max_input_tokens=500))
    texts = [f"fine {i}" for i in range(40)]
    texts[7], texts[30] = "this is <<bad>>", "long " * 1000
    ((results, _),) = embed(emulator.endpoint, [texts])
    codes = [e.code if e else None for e in results.errors]
    assert codes[7] == "content_filter" and codes[30] == "context_length_exceeded"
    assert all(codes[i] is None and results.values[i] is not None for i in range(40) if i not in (7, 30))


def test_embeddings_under_faults(emulator):
    emulator.configure(
        faults=Faults(error_500_rate=0.2, drop_rate=0.1, malformed_rate=0.1, shuffle_embeddings=True, seed=11)
    )
    batches = [[f"doc {b} {i}" for i in range(250)] for b in range(2)]
    out = embed(emulator.endpoint, batches, batch_size=50)
    for (results, _), texts in zip(out, batches, strict=True):
        assert results.errors == [None] * 250
        for text, vector in zip(texts, results.values, strict=True):
            np.testing.assert_array_equal(vector, embed_text(text, 1536))


@pytest.mark.parametrize(
    ("tokens", "batch_size", "budget", "expected"),
    [
        ([1, 1, 1, 1, 1], 2, 100, [[0, 1], [2, 3], [4]]),
        ([5, 5, 5], 10, 10, [[0, 1], [2]]),
        ([50, 1, 1], 10, 10, [[0], [1, 2]]),
        ([], 10, 10, []),
    ],
)
def test_pack(tokens, batch_size, budget, expected):
    assert pack(tokens, batch_size, budget) == expected


def test_explicit_request_budget_keeps_under_the_service_limit(emulator):
    # 10/s with a burst of 2.5: an opening of 8 is refused even when a loaded machine spreads it over 0.5 s
    emulator.configure(rate_limit=RateLimit(requests_per_minute=600, window_seconds=0.25))
    prompts = [f"budget {i}" for i in range(60)]
    ((results, _),) = run_chat(emulator.endpoint, [prompts], concurrency=16)
    assert results.errors == [None] * 60
    assert emulator.stats()["requests"].get("chat 429", 0) > 0  # without a budget the opening is refused

    emulator.configure(rate_limit=RateLimit(requests_per_minute=1200, window_seconds=1.0))
    emulator.reset_stats()
    ((results, _),) = run_chat(emulator.endpoint, [prompts], concurrency=16, max_requests_per_minute=1100)
    assert results.errors == [None] * 60
    assert emulator.stats()["requests"] == {"chat 200": 60}


def test_explicit_token_budget_is_split_across_tasks(emulator):
    emulator.configure(rate_limit=RateLimit(tokens_per_minute=60 * 400, window_seconds=1.0))
    prompts = [f"token budget {i} " + "word " * 20 for i in range(30)]
    ((results, _),) = run_chat(
        emulator.endpoint, [prompts], concurrency=16, max_tokens_per_minute=2 * 60 * 350, concurrent_tasks=2
    )
    assert results.errors == [None] * 30
    assert emulator.stats()["requests"] == {"chat 200": 30}


def test_adaptive_control_absorbs_a_tight_limit(emulator):
    emulator.configure(rate_limit=RateLimit(requests_per_minute=600, window_seconds=0.5), faults=Faults(latency_ms=20))
    prompts = [f"tight {i}" for i in range(50)]
    out = run_chat(emulator.endpoint, [prompts[:25], prompts[25:]], concurrency=32)
    assert [results.errors for results, _ in out] == [[None] * 25, [None] * 25]
    requests = emulator.stats()["requests"]
    assert requests["chat 200"] == 50
    assert requests.get("chat 429", 0) < 50, requests  # paced after the first refusals, not hammering


def test_partitions_sharing_a_limited_deployment_finish_without_errors(emulator):
    """Two partitions at once (threads, as two Spark tasks would be) against one 20 requests/s budget: the
    remaining-budget headers keep both paced after the opening burst, and every row gets its own answer."""
    emulator.configure(
        rate_limit=RateLimit(requests_per_minute=1200, window_seconds=1.0), faults=Faults(latency_ms=50, jitter=0.5)
    )
    prompts = [[f"shared {p}-{i}" for i in range(60)] for p in range(2)]
    outputs: dict[int, list] = {}

    def partition(p: int) -> None:
        outputs[p] = run_chat(emulator.endpoint, [prompts[p]], concurrency=32)

    threads = [threading.Thread(target=partition, args=(p,)) for p in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for p in range(2):
        ((results, _),) = outputs[p]
        assert results.errors == [None] * 60
        assert results.values == [chat_reply([{"role": "user", "content": text}]) for text in prompts[p]]
    requests = emulator.stats()["requests"]
    assert requests["chat 200"] == 120
    # the opening burst (2 x 32 against a budget of 20) is refused; after that the pace holds: far fewer 429s
    # than rows, where a client retrying on its own gets several per row and gives up on some
    assert requests.get("chat 429", 0) < 100, requests  # about 45 of them in the burst; ~900 with no control


def test_repeats_across_a_partitions_batches_are_not_resent(emulator):
    first = [f"repeat {i}" for i in range(30)]
    other = [f"other {i}" for i in range(30)]
    # batch 3 is read once batch 1 has been answered (at most two batches are pending), so its repeats of
    # batch 1 come from the cache; repeats of a batch still in flight may be sent again
    out = embed(emulator.endpoint, [first, other, [*first[:10], "new text"]])
    assert all(results.errors == [None] * len(results.errors) for results, _ in out)
    np.testing.assert_array_equal(out[2][0].values[0], embed_text("repeat 0", 1536))
    assert set(emulator.stats()["inputs"].values()) == {1}


def test_cache_is_bounded():
    cache = VectorCache(max_bytes=3 * 1536 * 4)
    for i in range(5):
        cache.put(f"t{i}", np.zeros(1536, dtype=np.float32))
    assert list(cache.items) == ["t2", "t3", "t4"] and cache.get("t0") is None


class DictCache:
    """A response cache and observer through the engine's seams, kept in a dict (what the real cache stores)."""

    def __init__(self) -> None:
        self.bodies: dict[str, object] = {}
        self.attempts = 0
        self.closed = False

    @staticmethod
    def key(unit) -> str:
        import json

        return json.dumps(unit.payload, sort_keys=True)

    def planned(self, results) -> None:
        pass

    def lookup(self, unit):
        return self.bodies.get(self.key(unit))

    def store(self, unit, body) -> None:
        self.bodies[self.key(unit)] = body

    def admit(self, unit, until, stop):
        return None

    def attempt(self, unit, outcome, seconds) -> None:
        self.attempts += 1

    def withdraw(self, unit) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_the_cache_and_observer_seams(emulator):
    emulator.configure(faults=Faults(error_500_rate=0.3, seed=4))
    hooks = DictCache()
    prompts = [f"cached {i}" for i in range(40)]
    cfg = config(emulator.endpoint)
    first = list(run_partition(iter([(prompts, None)]), ChatOperation(model=None), cfg, hooks))
    assert first[0][0].errors == [None] * 40 and hooks.closed
    sent = sum(emulator.stats()["requests"].values())
    assert hooks.attempts == sent > 40  # every attempt observed, retries included
    emulator.reset_stats()
    again = list(run_partition(iter([(prompts, None)]), ChatOperation(model=None), cfg, hooks))
    assert again[0][0].values == first[0][0].values
    assert emulator.stats()["requests"] == {}  # every answer came through the lookup seam


def test_the_admit_seam_ends_units_unsent(emulator):
    from spark_aoai._core.contract import RowError

    class Cap(DictCache):
        def admit(self, unit, until, stop):
            return RowError(None, "budget_exhausted", "the spend cap is reached")

    ((results, _),) = list(
        run_partition(iter([(["a", "b"], None)]), ChatOperation(model=None), config(emulator.endpoint), Cap())
    )
    assert [e.code for e in results.errors] == ["budget_exhausted"] * 2
    assert emulator.stats()["requests"] == {}
