"""Usage and cost against the emulator over real HTTP: per-row usage sums, job statistics, estimate, spend cap,
progress. What the service billed is read by a recording proxy (tests/billing.py) from the 200 bodies."""

from __future__ import annotations

import re
import time

import pytest

from spark_aoai._core.contract import ErrorCode
from spark_aoai._core.pricing import PRICE_TABLE, Price, price_for
from spark_aoai._features.progress import render
from spark_aoai._wire.usage import billed_usage
from spark_aoai.emulator import Emulator, Faults
from tests.billing import BillingProxy


@pytest.fixture
def billed():
    with Emulator() as emu, BillingProxy(emu.endpoint) as proxy:
        proxy.emulator = emu  # type: ignore[attr-defined]
        yield proxy


def chat(endpoint: str, **params: object):
    from spark_aoai import ChatCompletion

    params = {"deploymentName": "gpt-4o", **params}
    return ChatCompletion(promptCol="prompt", endpoint=endpoint, apiKey="k", **params)


def embedding(endpoint: str, **params: object):
    from spark_aoai import Embedding

    return Embedding(
        deploymentName="text-embedding-3-small", inputCol="prompt", endpoint=endpoint, apiKey="k", **params
    )


def prompts_df(spark, count: int, distinct: int, partitions: int = 2):
    rows = [(i, f"question number {i % distinct} about the weather in town {i % distinct}") for i in range(count)]
    return spark.createDataFrame(rows, "id int, prompt string").repartition(partitions)


def usage_sums(rows, column: str = "usage") -> dict[str, int]:
    names = ("prompt_tokens", "completion_tokens", "total_tokens")
    return {n: sum(getattr(r[column], n) or 0 for r in rows if r[column] is not None) for n in names}


def test_chat_usage_column_sums_to_what_was_billed_with_duplicates(spark, billed):
    rows = chat(billed.endpoint, usageCol="usage", dedup=False).transform(prompts_df(spark, 60, 20)).collect()
    assert all(r.error is None for r in rows)
    assert usage_sums(rows) == dict(billed.billed) and billed.billed["total_tokens"] > 0
    assert billed.statuses == {"chat 200": 60}  # with dedup=False chat sends every row, duplicates included


def test_embedding_usage_column_sums_to_what_was_billed_with_duplicates(spark, billed):
    stage = embedding(billed.endpoint, usageCol="usage", batchSize=7)
    rows = stage.transform(prompts_df(spark, 90, 25)).collect()
    assert all(r.error is None for r in rows)
    sums = usage_sums(rows)
    assert sums["prompt_tokens"] == billed.billed["prompt_tokens"] > 0
    assert sums["total_tokens"] == billed.billed["total_tokens"]
    assert sum(r.usage.total_tokens == 0 for r in rows) >= 90 - 2 * 25  # repeats carry 0 (each partition sends once)


def test_responses_usage_column_sums_to_what_was_billed(spark, billed):
    stage = chat(billed.endpoint, usageCol="usage", apiType="responses", dedup=False)  # the estimate counts every row
    guess = stage.estimate(prompts_df(spark, 30, 10))
    assert billed.statuses == {} and guess["requests"] == 30
    rows = stage.transform(prompts_df(spark, 30, 10)).collect()
    assert abs(guess["prompt_tokens"] - billed.billed["prompt_tokens"]) <= 0.1 * billed.billed["prompt_tokens"]
    assert all(r.error is None for r in rows)
    assert billed.statuses == {"responses 200": 30}
    assert usage_sums(rows) == dict(billed.billed) and billed.billed["total_tokens"] > 0
    stats = stage.statistics()
    assert (stats.prompt_tokens, stats.total_tokens) == (billed.billed["prompt_tokens"], billed.billed["total_tokens"])
    assert billed_usage({"usage": {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12}}).total_tokens == 12


def test_statistics_match_the_emulators_counts_on_a_run_with_faults(spark, billed):
    emu = billed.emulator  # type: ignore[attr-defined]
    # 429s drawn by the seed, not by a limiter: a loaded machine may send too slowly for 20 requests/s to refuse
    faults = Faults(error_500_rate=0.15, quota_429_rate=0.1, quota_retry_after_seconds=0.1, seed=3, latency_ms=5)
    emu.configure(faults=faults)
    stage = chat(billed.endpoint, usageCol="usage", maxAttempts=20, concurrency=8, dedup=False)  # 119 "x" sent
    df = spark.createDataFrame([(i, "x" if i else None) for i in range(120)], "id int, prompt string")
    rows = stage.transform(df.repartition(2)).collect()
    stats = stage.statistics()
    requests_seen = emu.stats()["requests"]
    assert requests_seen.get("chat 429", 0) > 0 and requests_seen.get("chat 500", 0) > 0  # the faults happened
    # the client counts every attempt; an attempt whose connection failed before the emulator read it (a loaded
    # machine) is the client's "no_response" and the emulator never saw it: the rest must match one for one
    lost = stats.statuses.get("no_response", 0)
    assert stats.requests == sum(requests_seen.values()) + lost, (stats.statuses, requests_seen)
    assert stats.throttled == requests_seen["chat 429"]
    answered = {k: v for k, v in stats.statuses.items() if k != "no_response"}
    assert answered == {k.split()[1]: v for k, v in requests_seen.items()}, (stats.statuses, requests_seen)
    assert stats.retries == stats.requests - requests_seen["chat 200"]
    assert stats.prompt_tokens == billed.billed["prompt_tokens"]
    assert stats.completion_tokens == billed.billed["completion_tokens"]
    assert stats.total_tokens == billed.billed["total_tokens"] == usage_sums(rows)["total_tokens"]
    assert (stats.rows, stats.rows_succeeded, stats.rows_failed) == (120, 119, 1)
    assert stats.errors_by_code == {"invalid_input": 1}
    price = PRICE_TABLE["gpt-4o"]
    assert stats.estimated_cost == pytest.approx(price.cost(stats.prompt_tokens, stats.completion_tokens))
    assert stats.elapsed_seconds is not None and stats.elapsed_seconds > 0 and stats.missing == []
    assert "rows 120: 119 ok, 1 failed (invalid_input 1)" in str(stats)


@pytest.mark.parametrize("progress", [False, True])  # local mode: the task records; with progress: observe
def test_row_figures_are_the_first_actions_on_both_paths(spark, billed, progress):
    stage = chat(billed.endpoint, progress=progress)
    rows = [(i, None if i % 10 == 0 else "" if i % 10 == 1 else f"q {i}") for i in range(60)]
    out = stage.transform(spark.createDataFrame(rows, "id int, prompt string").repartition(3))
    assert out.count() == 60 and len(out.collect()) == 60  # two actions: the rows are counted once
    stats = stage.statistics()
    assert (stats.rows, stats.rows_failed) == (60, 12)
    assert stats.errors_by_code == {"invalid_input": 12}
    assert stats.requests - stats.retries == 2 * 48  # each action sends again (no cache)


def test_estimate_sends_nothing_and_counts_prompts_within_ten_percent(spark, billed):
    df = prompts_df(spark, 40, 40)
    stage = chat(billed.endpoint, usageCol="usage", maxTokens=50)
    guess = stage.estimate(df, maxRequestsPerMinute=60, maxTokensPerMinute=100_000)
    assert billed.emulator.stats()["requests"] == {} and billed.statuses == {}  # type: ignore[attr-defined]
    assert guess["requests"] == 40 and guess["rows"] == 40 and guess["tokenizer"] == "o200k_base"
    assert guess["max_completion_tokens"] == 40 * 50
    assert guess["minutes"] == pytest.approx(40 / 60)
    low, high = guess["estimated_cost"]
    assert low == pytest.approx(PRICE_TABLE["gpt-4o"].cost(guess["prompt_tokens"], 0)) and high > low
    stage.transform(df).collect()
    assert abs(guess["prompt_tokens"] - billed.billed["prompt_tokens"]) <= 0.1 * billed.billed["prompt_tokens"]

    billed.reset()
    emb = embedding(billed.endpoint, batchSize=8)
    texts = prompts_df(spark, 50, 20, partitions=1)
    guess = emb.estimate(texts)
    assert billed.statuses == {} and guess["tokenizer"] == "cl100k_base"
    emb.transform(texts).collect()
    assert guess["requests"] == billed.statuses["embeddings 200"] == 3  # 20 distinct texts, 8 per request
    assert abs(guess["prompt_tokens"] - billed.billed["prompt_tokens"]) <= 0.1 * billed.billed["prompt_tokens"]
    assert guess["max_completion_tokens"] == 0 and guess["minutes"] is None


def test_a_cap_at_a_third_of_the_need_stops_there_and_marks_the_rest(spark, billed):
    df = prompts_df(spark, 120, 120)
    stage = chat(billed.endpoint, usageCol="usage", concurrency=4)
    stage.transform(df).collect()
    needed = billed.billed["total_tokens"]
    per_request = needed / 120
    billed.reset()
    cap = needed // 3
    rows = chat(billed.endpoint, usageCol="usage", concurrency=4, maxTotalTokens=cap).transform(df).collect()
    in_flight = 2 * 4 * max(r.usage.total_tokens for r in rows if r.usage is not None)  # 2 tasks x 4 requests
    assert 0.9 * cap <= billed.billed["total_tokens"] <= cap + in_flight  # spent, not held back
    unanswered = [r for r in rows if r.response is None]
    assert unanswered and all(r.error.code == ErrorCode.BUDGET_EXHAUSTED.value for r in unanswered)
    assert all(r.error.attempts == 0 for r in unanswered)  # no request was sent for them
    assert billed.statuses["chat 200"] == 120 - len(unanswered)
    assert len(unanswered) >= 120 - (cap + in_flight) / per_request


def test_max_cost_caps_through_the_price_table(spark, billed):
    df = prompts_df(spark, 40, 40, partitions=1)
    stage = chat(billed.endpoint, concurrency=2, maxCost=0.002, prices={"input": 10.0, "output": 10.0})
    rows = stage.transform(df).collect()
    spent = Price(10.0, None, 10.0).cost(billed.billed["prompt_tokens"], billed.billed["completion_tokens"])
    per_request = spent / billed.statuses["chat 200"]
    assert 0.002 - 2 * per_request <= spent <= 0.002 + 2 * 10.0 * 200 / 1e6  # spent to within a request or two
    assert {r.error.code for r in rows if r.error is not None} == {"budget_exhausted"}


def test_progress_line_shows_rows_errors_rates_and_eta(spark, billed, capsys):
    billed.emulator.configure(faults=Faults(latency_ms=150))  # type: ignore[attr-defined]
    df = spark.createDataFrame([(i, f"slow {i}" if i % 10 else "") for i in range(60)], "id int, prompt string")
    df = df.repartition(2)
    stage = chat(billed.endpoint, concurrency=2, progress=True)
    stage.estimate(df)
    out = stage.transform(df)
    out.collect()
    time.sleep(2.5)  # the last redraw comes within one interval of the action's end
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("spark_aoai")]
    assert lines, "no progress line was drawn"
    line = r"spark_aoai gpt-4o: ([\d,]+)/60 rows \((\d+)%\), (\d+) errors, ([\d,]+) req, 0 429s, [\d,]+ tokens/s"
    parsed = [re.match(line, text) for text in lines]
    assert all(parsed), lines
    assert parsed[-1].groups()[:4] == ("60", "100", "6", "54")  # type: ignore[union-attr]
    assert any("ETA" in text for text in lines[:-1]) or len(lines) == 1


def test_progress_is_off_unless_asked_when_not_interactive(spark, billed, capsys):
    chat(billed.endpoint).transform(prompts_df(spark, 4, 4)).collect()
    time.sleep(2.5)
    assert "spark_aoai gpt-4o" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("records", "total", "expected"),
    [
        ([], None, "spark_aoai d: 0 rows, 0 errors, 0 req, 0 429s, - tokens/s"),
        (
            [{"rows_done": 30, "error_rows": 2, "requests": 31, "statuses": {"429": 1},
              "tokens": {"total_tokens": 600}, "started": 90.0},
             {"rows_done": 20, "error_rows": 0, "requests": 20, "statuses": {},
              "tokens": {"total_tokens": 400}, "started": 95.0}],
            200,
            "spark_aoai d: 50/200 rows (25%), 2 errors, 51 req, 1 429s, 100 tokens/s, ETA 0:00:30",
        ),
    ],
)  # fmt: skip
def test_render(records, total, expected):
    assert render("d", records, total, now=100.0) == expected


def test_price_table_lookup_and_override():
    assert price_for("gpt-4o-mini-eu") == PRICE_TABLE["gpt-4o-mini"]
    assert price_for("gpt-4o") == PRICE_TABLE["gpt-4o"]
    assert price_for("unknown-model") is None
    mine = Price(1.0, 0.5, 2.0)
    assert price_for("gpt-4o", mine) is mine
    assert mine.cost(prompt=1_000_000, completion=1_000_000, cached=1_000_000) == pytest.approx(2.5)


def test_bad_caps_and_prices_are_refused_on_the_driver(spark, billed):
    from spark_aoai import ConfigurationError

    df = prompts_df(spark, 2, 2)
    with pytest.raises(ConfigurationError, match="maxCost: no price"):
        chat(billed.endpoint, maxCost=1.0, deploymentName="my-llama").transform(df)
    with pytest.raises(ConfigurationError, match="prices"):
        chat(billed.endpoint, prices={"inputs": 1.0}).transform(df)
    with pytest.raises(ConfigurationError, match="maxTotalTokens"):
        chat(billed.endpoint, maxTotalTokens=-1).transform(df)


# -- #23.7 / #23.11: statisticsDir checked on the driver and never failing a task; counts of cached runs ---------


def test_bad_settings_are_refused_on_the_driver_naming_the_param(spark, billed, tmp_path):
    from spark_aoai import ConfigurationError

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.raises(ConfigurationError, match=r"statisticsDir .*a-file.* cannot be written"):
        chat(billed.endpoint, statisticsDir=str(blocked)).transform(prompts_df(spark, 2, 2))
    with pytest.raises(ConfigurationError, match="outputRetries must be 0 or more, got -1"):
        chat(billed.endpoint, outputSchema="a string", outputRetries=-1).transform(prompts_df(spark, 2, 2))
    assert billed.statuses == {}
    stage = chat(billed.endpoint, statisticsDir=str(tmp_path / "stats"))
    stage.transform(prompts_df(spark, 2, 2))
    assert not list((tmp_path / "stats").rglob("probe*"))  # the driver's check leaves nothing behind


def test_a_statistics_dir_that_fails_mid_job_fails_no_task(spark, billed, tmp_path):
    from tests.test_cache_spark import break_mid_job

    billed.emulator.configure(faults=Faults(latency_ms=100))  # type: ignore[attr-defined]
    stats_dir, real = tmp_path / "stats", tmp_path / "real"
    real.mkdir()
    stats_dir.symlink_to(real)
    stage = chat(billed.endpoint, statisticsDir=str(stats_dir), concurrency=2, usageCol="usage")
    rows = break_mid_job(stats_dir, real, stage.transform(prompts_df(spark, 80, 80)))
    assert len(rows) == 80 and all(r.error is None for r in rows)
    assert billed.statuses == {"chat 200": 80} and usage_sums(rows) == dict(billed.billed)
    stats = stage.statistics()  # the records are out of reach: those figures are missing, the rows are counted
    assert stats.rows == 80 and stats.requests is None and "requests" in stats.missing


def test_a_fully_cached_run_counts_its_rows_and_its_re_asks_come_from_the_service(spark, billed, tmp_path):
    import json

    from spark_aoai._core import constants as C
    from spark_aoai._features.stats import read_records

    df = prompts_df(spark, 40, 40)
    stage = chat(billed.endpoint, cacheDir=str(tmp_path / "cache"), outputSchema="label string, score double",
                 usageCol="usage", deploymentCol="answered_by")  # fmt: skip
    stage.transform(df).collect()
    assert billed.statuses == {"chat 200": 40}
    billed.reset()
    rows = stage.transform(df).collect()
    assert billed.statuses == {} and {r.answered_by for r in rows} == {"cache"}
    spec = stage._usage_run.factory.statistics  # type: ignore[attr-defined]
    records = read_records(spec.directory, spec.run_id)
    assert sum(r["rows_done"] for r in records) == 40  # what the progress line shows
    assert render("d", records, 40, time.time()).startswith("spark_aoai d: 40/40 rows (100%), 0 errors, 0 req")
    stats = stage.statistics()
    assert (stats.rows, stats.rows_failed, stats.requests, stats.total_tokens) == (40, 0, 0, 0)
    # a stored answer that no longer fits the schema (stored by an earlier version, say) is asked again
    spoiled = sorted((tmp_path / "cache" / C.CACHE_FORMAT).rglob("*.json"))[:10]
    for path in spoiled:
        entry = json.loads(path.read_text())
        entry["answer"]["choices"][0]["message"]["content"] = '{"label": 12345}'
        path.write_text(json.dumps(entry))
    rows = stage.transform(df).collect()
    assert billed.statuses == {"chat 200": 10} and all(r.error is None for r in rows)
    asked = [r for r in rows if r.usage.total_tokens > 0]
    assert len(asked) == 10 and {r.answered_by for r in asked} == {"gpt-4o"}  # not "cache"
    assert usage_sums(rows) == dict(billed.billed)  # the stored answer's tokens are not counted again
    assert stage.statistics().total_tokens == billed.billed["total_tokens"]


def test_each_figure_says_its_scope_across_several_actions(spark, billed, capsys):
    stage = chat(billed.endpoint, progress=False)
    rows = [(i, None if i % 10 == 0 else f"q {i}") for i in range(30)]
    out = stage.transform(spark.createDataFrame(rows, "id int, prompt string").repartition(2))
    before = stage.statistics(timeout=0.2)
    assert before.note is not None and str(before).startswith("no action has run over the output")
    assert before.rows is None and before.requests is None
    out.show(5)  # a partial job (Spark's take), then a whole one
    assert out.count() == 30
    stats = stage.statistics()
    assert (stats.rows, stats.rows_failed, stats.errors_by_code) == (30, 3, {"invalid_input": 3})
    assert stats.rows_scope == "the last Spark job over the output" and stats.jobs is not None and stats.jobs >= 2
    sent = billed.statuses["chat 200"]
    assert stats.requests == sent > 27 and stats.rows_sent is not None and stats.rows_sent > 30  # both actions sent
    text = str(stats)
    assert "rows 30: 27 ok, 3 failed (invalid_input 3) [the last Spark job over the output]" in text
    assert f"[every job: {stats.jobs}, {stats.rows_sent} rows sent through]" in text
