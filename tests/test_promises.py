"""What we promise (README), against a hostile service: whatever an attempt raises, its slot is released and
its row gets an error value; an answer the library cannot read is never a wrong value, a hang or a failed task;
a credential that never works fails the job quickly; billed error rows carry their usage; no secret in any
message; the spend cap spends the budget it is given.

Engine tests run the partition runner over real HTTP without Spark, each inside a bounded thread (a leaked
slot would hang it); stage tests run a local Spark session against the emulator.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import pytest

from spark_aoai import ChatCompletion, failure_of
from spark_aoai._client.auth import ApiKey, Secret, TokenProvider
from spark_aoai._client.config import ClientConfig, Limits, resolve_endpoint
from spark_aoai._client.retry import RetryPolicy
from spark_aoai._core.bounded_json import loads
from spark_aoai._core.contract import ErrorCode, RowError, RowResults
from spark_aoai._engine.hooks import NoHooks
from spark_aoai._engine.partition import run_partition
from spark_aoai._planning.operations import ChatOperation
from spark_aoai._planning.schemas import from_ddl
from spark_aoai._planning.structured import MisfitError, StructuredOutput
from spark_aoai.emulator import Faults
from spark_aoai.exceptions import SystemicError

KEY = "sk-live-9f8e7d6c5b4a39281706f5e4"


def run_bounded(fn: Any, seconds: float = 30.0) -> Any:
    """``fn()`` in a thread; fails the test (instead of hanging it) when it has not returned in ``seconds``."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the partition did not finish within {seconds} s (a leaked slot or a hang)"
    if "error" in out:
        raise out["error"]
    return out["value"]


def engine(endpoint: str, items: list[Any], operation: Any = None, hooks: Any = None, credential: Any = None,
           concurrency: int = 2, max_attempts: int = 2, **limits: Any) -> RowResults:  # fmt: skip
    cfg = ClientConfig(
        endpoint=resolve_endpoint(endpoint),
        deployment="gpt-4o",
        credential=credential or ApiKey(Secret(KEY)),
        retry=RetryPolicy(max_attempts=max_attempts, base_delay=0.01, max_delay=0.05),
        limits=Limits(concurrency=concurrency, **limits),
    )
    operation = operation or ChatOperation(model=None)
    ((results, _),) = run_bounded(lambda: list(run_partition(iter([(items, None)]), operation, cfg, hooks)))
    return results


def assert_every_row_once(results: RowResults) -> None:
    for value, error in zip(results.values, results.errors, strict=True):
        assert (value is None) != (error is None)


# -- 1. whatever an attempt raises, the slot is released and the row gets an error --------------------------


class Raising(NoHooks):
    """Hooks that raise at one seam for the rows whose prompt says so."""

    def __init__(self, seam: str) -> None:
        self.seam = seam

    def _maybe(self, seam: str, unit: Any) -> None:
        if seam == self.seam and "boom" in str(unit.payload):
            raise RuntimeError(f"{seam} exploded")

    def lookup(self, unit: Any) -> Any:
        self._maybe("lookup", unit)
        return None

    def admit(self, unit: Any, until: Any, stop: Any) -> RowError | None:
        self._maybe("admit", unit)
        return None

    def attempt(self, unit: Any, outcome: Any, seconds: float) -> None:
        self._maybe("attempt", unit)

    def store(self, unit: Any, body: Any) -> None:
        self._maybe("store", unit)


class RaisingParser(ChatOperation):
    """A chat operation whose answer parser raises (not MalformedResponseError) for some rows."""

    def accept(self, unit: Any, body: Any, request_id: str | None) -> Any:
        if "boom" in str(unit.payload):
            raise RecursionError("the parser blew its stack")
        return super().accept(unit, body, request_id)


@pytest.mark.parametrize("seam", ["admit", "attempt", "store"])
def test_an_exception_at_any_hook_of_an_attempt_releases_its_slot(emulator, seam):
    # 8 raising rows through 2 slots: a single leaked slot per raise would hang the partition after two
    items = [f"boom {i}" if i % 2 else f"fine {i}" for i in range(16)]
    results = engine(emulator.endpoint, items, hooks=Raising(seam))
    assert_every_row_once(results)
    codes = [None if e is None else e.code for e in results.errors]
    if seam == "store":  # the answer was placed before the store raised: the row keeps it
        assert codes == [None] * 16
    else:
        assert codes == [None if i % 2 == 0 else ErrorCode.INTERNAL_ERROR.value for i in range(16)]


def test_an_exception_in_the_answer_parser_releases_its_slot(emulator):
    items = [f"boom {i}" if i % 2 else f"fine {i}" for i in range(16)]
    results = engine(emulator.endpoint, items, operation=RaisingParser(model=None))
    assert_every_row_once(results)
    assert [e is not None for e in results.errors] == [bool(i % 2) for i in range(16)]
    assert all("blew its stack" in e.message for e in results.errors if e is not None)


def test_a_cache_lookup_that_raises_costs_rows_not_the_task(emulator):
    items = [f"boom {i}" if i % 2 else f"fine {i}" for i in range(8)]
    results = engine(emulator.endpoint, items, hooks=Raising("lookup"))
    assert_every_row_once(results)


# -- 2. deeply nested and non-finite answers are malformed, never internal errors ---------------------------


@pytest.mark.parametrize(
    "text", ["[" * 5000 + "]" * 5000, '{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}', '{"a": 1e400}']
)
def test_untrusted_json_refuses_what_json_loads_lets_through(text):
    with pytest.raises(ValueError):
        loads(text)


def test_deeply_nested_200s_are_malformed_and_their_slots_come_back(emulator):
    emulator.configure(faults=Faults(deep_body_marker="DEEP"))
    items = [f"DEEP {i}" if i % 2 else f"fine {i}" for i in range(12)]  # 6 deep answers, 2 slots
    results = engine(emulator.endpoint, items)
    assert_every_row_once(results)
    for i, error in enumerate(results.errors):
        if i % 2:
            assert error is not None and error.code == ErrorCode.MALFORMED_RESPONSE.value and error.attempts == 2
            assert "nested too deeply" in error.message
        else:
            assert error is None
    assert emulator.stats()["requests"] == {"chat 200": 6 + 6 * 2}


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_non_finite_number_never_fits_a_numeric_field(literal):
    structured = StructuredOutput(from_ddl("score double, weight float, amount decimal(10,2), n bigint"))
    with pytest.raises(MisfitError):
        structured.parse(f'{{"score": {literal}, "weight": 1, "amount": 1, "n": 1}}')
    with pytest.raises(MisfitError):
        structured.parse(f'{{"score": 1, "weight": 1, "amount": {literal}, "n": 1}}')
    with pytest.raises(MisfitError):  # a number no double holds, written as an integer
        structured.parse('{"score": 1' + "0" * 400 + ', "weight": 1, "amount": 1, "n": 1}')
    with pytest.raises(MisfitError):  # more digits than any decimal column holds
        structured.parse('{"score": 1, "weight": 1, "amount": 1' + "0" * 60 + ', "n": 1}')


def stage(endpoint: str, **params: Any) -> ChatCompletion:
    params = {"deploymentName": "gpt-4o", "promptCol": "prompt", "endpoint": endpoint, "apiKey": KEY, **params}
    return ChatCompletion(**params)


def frame(spark: Any, prompts: list[str], partitions: int = 2) -> Any:
    rows = [(i, p) for i, p in enumerate(prompts)]
    return spark.createDataFrame(rows, "id int, prompt string").repartition(partitions)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "1e400"])
def test_non_finite_structured_answers_are_invalid_output_and_billed(spark, emulator, literal):
    emulator.configure(faults=Faults(non_finite_answer_marker="ODD", non_finite_literal=literal))
    prompts = [f"ODD {i}" if i % 3 == 0 else f"even {i}" for i in range(30)]
    out = stage(emulator.endpoint, outputSchema="score double, ratio float, amount decimal(10,2), label string",
                usageCol="usage", maxAttempts=2)  # fmt: skip
    rows = sorted(out.transform(frame(spark, prompts)).collect(), key=lambda r: r.id)
    assert len(rows) == 30
    for row in rows:
        if row.id % 3 == 0:
            assert row.response is None and row.error.code == ErrorCode.INVALID_OUTPUT.value
            assert row.usage is not None and row.usage.total_tokens > 0  # both asks were billed
        else:
            assert row.error is None
            assert all(math.isfinite(v) for v in (row.response.score, row.response.ratio))
    assert sum(r.usage.total_tokens for r in rows) == emulator.stats()["billed_tokens"]
    assert emulator.stats()["requests"] == {"chat 200": 20 + 10 * 2}  # each odd row asked twice, no more


def test_deeply_nested_answers_and_bodies_through_a_stage(spark, emulator):
    emulator.configure(faults=Faults(deep_body_marker="DEEPBODY", deep_answer_marker="DEEPTEXT"))
    prompts = [["fine", "DEEPBODY", "DEEPTEXT"][i % 3] + f" {i}" for i in range(30)]
    out = stage(emulator.endpoint, outputSchema="label string", usageCol="usage", maxAttempts=2, concurrency=2)
    started = time.monotonic()
    rows = sorted(out.transform(frame(spark, prompts)).collect(), key=lambda r: r.id)
    assert time.monotonic() - started < 60
    codes = [None if r.error is None else r.error.code for r in rows]
    assert codes == [[None, "malformed_response", "invalid_output"][i % 3] for i in range(30)]
    text_rows = [r for r in rows if r.id % 3 == 2]
    assert all(r.usage is not None and r.usage.total_tokens > 0 for r in text_rows)  # billed, though misfit
    body_rows = [r for r in rows if r.id % 3 == 1]
    assert all(r.error.attempts == 2 for r in body_rows)


# -- 3. a credential that never works fails the job, naming it -------------------------------------------


class Provider:
    def __init__(self, failures: int) -> None:
        self.failures, self.calls, self.lock = failures, 0, threading.Lock()

    def __call__(self) -> str:
        with self.lock:
            self.calls += 1
            if self.calls <= self.failures:
                raise RuntimeError("identity endpoint unavailable")
        return "provider-token-value-123456"


def test_a_provider_that_never_produces_a_token_fails_the_task_quickly(emulator):
    started = time.monotonic()
    with pytest.raises(SystemicError) as raised:
        engine(emulator.endpoint, [f"p{i}" for i in range(40)], credential=TokenProvider(Provider(10**9)),
               concurrency=8, max_attempts=5)  # fmt: skip
    assert time.monotonic() - started < 30
    assert "tokenProvider" in str(raised.value) and "identity endpoint unavailable" in str(raised.value)
    assert emulator.stats()["requests"] == {}


def test_a_provider_that_fails_now_and_then_is_retried(emulator):
    provider = Provider(failures=5)  # 5 threads fail at once at the start: no request failed 3 times in a row
    results = engine(emulator.endpoint, [f"p{i}" for i in range(24)], credential=TokenProvider(provider),
                     concurrency=8, max_attempts=5)  # fmt: skip
    assert results.errors == [None] * 24


def unavailable() -> str:
    raise RuntimeError("identity endpoint unavailable")


def test_a_provider_that_always_raises_fails_the_job_within_30_seconds(spark, emulator):
    out = ChatCompletion(deploymentName="gpt-4o", promptCol="prompt", endpoint=emulator.endpoint,
                         tokenProvider=unavailable)  # fmt: skip
    started = time.monotonic()
    with pytest.raises(Exception) as raised:
        out.transform(frame(spark, [f"p{i}" for i in range(40)])).collect()
    assert time.monotonic() - started < 30
    error = failure_of(raised.value)
    assert error is not None and error["code"] == ErrorCode.CREDENTIAL_ERROR.value
    assert "tokenProvider" in error["message"]


# -- 9 and 10. billed error rows carry their usage; no secret in any message ------------------------------


def test_billed_error_rows_carry_their_usage(spark, emulator):
    emulator.configure(faults=Faults(bad_structured_rate=1.0, bad_structured_kind="missing_field", seed=3))
    out = stage(emulator.endpoint, outputSchema="score double", usageCol="usage", outputRetries=1)
    rows = out.transform(frame(spark, [f"rate {i}" for i in range(20)])).collect()
    assert {r.error.code for r in rows} == {ErrorCode.INVALID_OUTPUT.value}
    assert all(r.usage is not None and r.usage.total_tokens > 0 for r in rows)
    assert sum(r.usage.total_tokens for r in rows) == emulator.stats()["billed_tokens"]
    stats = out.statistics()
    assert stats.total_tokens == emulator.stats()["billed_tokens"]


def test_an_answer_echoing_the_key_is_masked_everywhere(spark, emulator):
    emulator.configure(faults=Faults(bad_structured_rate=1.0, bad_structured_kind="not_json", seed=1))
    prompts = [f"{KEY} {i}" for i in range(6)]  # the answer quotes the prompt, and with it the key
    out = stage(emulator.endpoint, outputSchema="score double", outputRetries=0)
    rows = out.transform(frame(spark, prompts, partitions=1)).collect()
    assert all(r.error.code == ErrorCode.INVALID_OUTPUT.value for r in rows)
    assert all(KEY not in r.error.message and "********" in r.error.message for r in rows)
    failing = stage(emulator.endpoint, outputSchema="score double", outputRetries=0, failOnError=True)
    with pytest.raises(Exception) as raised:
        failing.transform(frame(spark, prompts, partitions=1)).collect()
    assert KEY not in str(raised.value)
    error = failure_of(raised.value)
    assert error is not None and KEY not in error["message"]


# -- 6. the spend cap spends what it is given ---------------------------------------------------------


def test_a_generous_cap_with_a_large_max_tokens_refuses_no_row(spark, emulator):
    df = frame(spark, [f"question {i} about the weather" for i in range(200)])
    need = stage(emulator.endpoint, usageCol="usage").transform(df).collect()
    needed = sum(r.usage.total_tokens for r in need)
    emulator.reset_stats()
    capped = stage(emulator.endpoint, usageCol="usage", maxTokens=1000, maxTotalTokens=3 * needed)
    rows = capped.transform(df).collect()
    assert [r.error for r in rows if r.error is not None] == []


def test_a_cap_at_a_third_of_the_need_is_spent_before_any_refusal(spark, emulator):
    df = frame(spark, [f"question {i} about the weather in town {i}" for i in range(150)])
    need = stage(emulator.endpoint, usageCol="usage").transform(df).collect()
    needed = sum(r.usage.total_tokens for r in need)
    per_row = max(r.usage.total_tokens for r in need)
    emulator.reset_stats()
    cap = needed // 3
    capped = stage(emulator.endpoint, usageCol="usage", maxTokens=1000, maxTotalTokens=cap, concurrency=8)
    rows = capped.transform(df).collect()
    billed = emulator.stats()["billed_tokens"]
    refused = [r for r in rows if r.error is not None]
    assert refused and {r.error.code for r in refused} == {ErrorCode.BUDGET_EXHAUSTED.value}
    assert all(r.error.attempts == 0 for r in refused)
    assert billed >= 0.9 * cap  # the budget is spent, not held back by worst-case reservations
    # the README's bound: the requests in flight when the cap was met (2 tasks x concurrency) may each pass
    # their expected size; with answers of similar size the job ends within a few requests of the cap
    assert billed <= cap + 2 * 8 * per_row
    assert sum(r.usage.total_tokens for r in rows if r.usage is not None) == billed


# -- a billed 200 without usable text: a known shape is final, an unknown one is sent again once ----------


@pytest.mark.parametrize(
    ("kind", "code", "requests"),
    [
        ("reasoning_only", "incomplete", 1),
        ("in_progress", "incomplete", 1),
        ("output_string", "malformed_response", 2),
        ("no_output_text", "malformed_response", 2),
    ],
)
def test_responses_200s_without_text_are_billed_at_most_twice(emulator, kind, code, requests):
    emulator.configure(faults=Faults(no_text_marker="NOTEXT", no_text_kind=kind))
    items = [f"NOTEXT {i}" if i % 2 else f"fine {i}" for i in range(20)]
    operation = ChatOperation(model="gpt-4o", api="responses")
    results = engine(emulator.endpoint, items, operation=operation, concurrency=4, max_attempts=10)
    assert_every_row_once(results)
    for i, error in enumerate(results.errors):
        if i % 2:
            assert error is not None and error.code == code and error.attempts == requests
        else:
            assert error is None
    assert emulator.stats()["requests"] == {"responses 200": 10 + 10 * requests}
    assert all(u is not None and u.total_tokens for u, e in zip(results.usage, results.errors, strict=True) if e)


def test_the_ledger_loses_no_update_between_threads_of_one_process(tmp_path):
    from spark_aoai._features.budget import Ledger

    ledger = Ledger(tmp_path / "budget.ledger")

    def add(values: list[float]) -> None:
        values[6] += 1

    def work() -> None:
        for _ in range(500):
            ledger.update(add)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert ledger.read()[6] == 8 * 500
    ledger.close()


def test_a_reservation_left_by_a_dead_task_costs_one_bounded_wait(tmp_path):
    from spark_aoai._core.contract import Unit
    from spark_aoai._features.budget import BudgetFactory

    spec = BudgetFactory(str(tmp_path), "run", max_tokens=1000)
    dead = spec.open()
    assert dead.admit(Unit(RowResults(1), [[0]], {}, 600), None, threading.Event()) is None
    dead.ledger.close()  # the task's worker was killed: its close() never ran, its 600 tokens stay in flight
    alive = spec.open()
    rows = [Unit(RowResults(1), [[0]], {"n": i}, 500) for i in range(20)]
    started = time.monotonic()
    first = alive.admit(rows[0], time.monotonic() + 1.0, threading.Event())  # waits for the dead one, in vain
    assert first is not None and first.code == ErrorCode.BUDGET_EXHAUSTED.value
    assert 0.9 <= time.monotonic() - started < 5
    started = time.monotonic()
    assert all(alive.admit(u, None, threading.Event()) is not None for u in rows[1:])  # no more waits
    assert time.monotonic() - started < 2
    alive.close()


def test_a_wait_for_the_spend_cap_ends_when_the_task_stops(tmp_path):
    from spark_aoai._core.contract import Unit
    from spark_aoai._features.budget import BudgetFactory

    spec = BudgetFactory(str(tmp_path), "run", max_tokens=1000)
    busy = spec.open()
    assert busy.admit(Unit(RowResults(1), [[0]], {}, 900), None, threading.Event()) is None  # in flight
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    waiting = spec.open()
    started = time.monotonic()
    assert waiting.admit(Unit(RowResults(1), [[0]], {"n": 1}, 500), None, stop) is not None
    assert time.monotonic() - started < 3
    busy.close()
    waiting.close()


# -- packed answers are stored per pack, so a re-run pays only for what failed ------------------------------


@pytest.mark.parametrize("structured", [None, "label string"])
def test_a_rerun_after_packs_with_failed_items_sends_nothing_already_paid_for(spark, emulator, tmp_path, structured):
    emulator.configure(faults=Faults(pack_drop_rate=0.25, seed=5))
    prompts = [f"ticket {i}: the app crashes when I upload photo number {i}" for i in range(40)]
    extra = {"outputSchema": structured} if structured else {}
    out = stage(emulator.endpoint, rowsPerRequest=10, cacheDir=str(tmp_path), concurrency=2, **extra)
    first = sorted(out.transform(frame(spark, prompts, partitions=1)).collect(), key=lambda r: r.id)
    assert all(r.error is None for r in first)
    requests = emulator.stats()["requests"]
    assert sum(requests.values()) > 4  # dropped items were asked again in smaller packs
    emulator.reset_stats()
    again = sorted(out.transform(frame(spark, prompts, partitions=1)).collect(), key=lambda r: r.id)
    assert [r.response for r in again] == [r.response for r in first]
    assert emulator.stats()["requests"] == {}  # every answer, whatever happened to its pack-mates, was stored


def test_embedding_usage_adds_up_when_some_vectors_are_unusable(spark, emulator):
    from spark_aoai import Embedding

    emulator.configure(faults=Faults(non_finite_marker="<<nan>>", wrong_dimensions_marker="<<short>>"))
    texts = [f"text number {i}" for i in range(30)] + ["a <<nan>> one", "a <<short>> one"]
    df = spark.createDataFrame(list(enumerate(texts)), "id int, text string").coalesce(1)
    stage = Embedding(deploymentName="text-embedding-3-small", inputCol="text", endpoint=emulator.endpoint,
                      apiKey=KEY, usageCol="usage", batchSize=8)  # fmt: skip
    rows = stage.transform(df).collect()
    assert sum(r.error is not None for r in rows) == 2
    summed = sum(r.usage.total_tokens for r in rows if r.usage is not None)
    assert summed == stage.statistics().total_tokens > 0  # the unusable texts' share of their 200s included
