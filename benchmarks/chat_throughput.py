"""Chat throughput against the emulator, spark_aoai side by side with the seed loop and openaivec.

    .venv/bin/pip install -e ".[bench]"
    .venv/bin/python benchmarks/chat_throughput.py [--scenario rate latency tokens ...] [--skip seed openaivec]
                                                   [--repeat N]

Scenarios (default settings for every library; Spark local[4] so that all partitions run at once; Python
workers reused, Spark's default, except for openaivec, which needs reuse off):

1. rate: the emulator allows 40 requests/s (a burst of one second), latency 250 ms +-50%; 1,200 rows in
   4 partitions. Goal for spark_aoai: >= 0.95 of the limit, 0 error rows, <= 10% of requests answered 429.
2. latency: 500 ms latency, no limit; 600 rows in 2 partitions. Goal: >= 10x the seed's rows/s and >= 0.9 of
   partitions x concurrency / latency, measured at the service (first request to last answer).
3. tokens: 600,000 tokens/min and 3,600 requests/min (Azure's 6 RPM per 1,000 TPM), ~1,000-character prompts,
   so tokens bind first (about 37 requests/s); 1,200 rows in 4 partitions. Goals as in 1, on tokens.

Limiter shapes (issue #26; the emulator's ``RateLimit(window=..., ...)``), each 1,200 rows in 4 partitions at
250 ms +-50%, goal >= 0.95 of the limit with <= 5% of requests answered 429:

4. sliding1: 40 requests/s counted over a sliding 1 s window (Azure's shortest evaluation interval).
5. sliding10: 400 requests per sliding 10 s, no ``x-ratelimit-limit-*`` headers, whole-second ``Retry-After``
   only, chat charged by ``max_tokens`` (16 when unset): Microsoft's aoai-api-simulator. A sliding window lets
   a job use a whole window at once, so 1,200 requests can be done in 20 s: up to 1.5 of 40/s over this job.
6. tokens-bare: scenario 3 without limit headers and with whole-second ``Retry-After``.
7. slow: a reasoning model, 8 s +-50% per answer, 40 requests/s (continuous); goal >= 0.9 of the limit with
   0 error rows, measured at the service from the first request to the last one admitted (the answers of the
   last 8 s are latency, not quota); client CPU and peak Python worker memory beside it.

The seed is one requests.post per row in a pandas UDF (no retries: a 429 is a null row). openaivec packs many
rows into one Responses API request, so compare rows/s as well as requests/s.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
from _harness import measure, point_openaivec_at, print_table, spark_session

from spark_aoai import ChatCompletion
from spark_aoai.emulator import Emulator, Faults, RateLimit

DEPLOYMENT = "gpt-4o"


@dataclass
class Scenario:
    name: str
    rows: int
    partitions: int
    rate_limit: RateLimit
    faults: Faults
    prompt_chars: int = 40
    ideal_concurrency: int | None = None  # latency-bound: partitions x this / latency is the ideal rate

    @property
    def request_limit(self) -> float | None:
        return self.rate_limit.requests_per_minute / 60 if self.rate_limit.requests_per_minute else None

    @property
    def token_limit(self) -> float | None:
        return self.rate_limit.tokens_per_minute / 60 if self.rate_limit.tokens_per_minute else None


SCENARIOS = {
    "rate": Scenario(
        "rate-limited: 40 req/s, 250 ms +-50%",
        1200,
        4,
        RateLimit(2400, None, 1.0),
        Faults(latency_ms=250, jitter=0.5, seed=1),
    ),
    "latency": Scenario("latency-bound: 500 ms, no limit", 600, 2, RateLimit(), Faults(latency_ms=500), 40, 32),
    "tokens": Scenario(
        "token-limited: 600k TPM / 3,600 RPM, 250 ms +-50%",
        1200,
        4,
        RateLimit(3600, 600_000, 1.0),
        Faults(latency_ms=250, jitter=0.5, seed=1),
        1000,
    ),
    "sliding1": Scenario(
        "sliding 1 s: 40 req/s, 250 ms +-50%",
        1200,
        4,
        RateLimit(2400, None, 1.0, window="sliding"),
        Faults(latency_ms=250, jitter=0.5, seed=1),
    ),
    "sliding10": Scenario(
        "sliding 10 s, no limit headers, whole-second Retry-After: 40 req/s, 250 ms +-50%",
        1200,
        4,
        RateLimit(2400, None, 10.0, "sliding", limit_headers=False, retry_after="seconds", chat_cost="max_tokens"),
        Faults(latency_ms=250, jitter=0.5, seed=1),
    ),
    "tokens-bare": Scenario(
        "token-limited, no limit headers, whole-second Retry-After: 600k TPM / 3,600 RPM, 250 ms +-50%",
        1200,
        4,
        RateLimit(3600, 600_000, 1.0, limit_headers=False, retry_after="seconds"),
        Faults(latency_ms=250, jitter=0.5, seed=1),
        1000,
    ),
    "slow": Scenario(
        "slow model: 8 s +-50%, 40 req/s",
        1200,
        4,
        RateLimit(2400, None, 1.0),
        Faults(latency_ms=8000, jitter=0.5, seed=1),
    ),
}


def prompt(i: int, chars: int) -> str:
    text = f"Question {i}: summarise the customer feedback about delivery times and product quality. "
    return (text * (chars // len(text) + 1))[:chars]


def seed_udf(endpoint: str):  # type: ignore[no-untyped-def]
    from pyspark.sql.functions import pandas_udf

    url = f"{endpoint}/openai/deployments/{DEPLOYMENT}/chat/completions?api-version=2025-04-01-preview"

    @pandas_udf("string")
    def ask(prompts: pd.Series) -> pd.Series:
        import requests

        out = []
        for text in prompts:
            payload = {
                "messages": [
                    {"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": text},
                ]
            }
            response = requests.post(url, headers={"api-key": "bench"}, json=payload)
            out.append(response.json()["choices"][0]["message"]["content"] if response.status_code == 200 else None)
        return pd.Series(out)

    return ask


def warm_up(spark: Any) -> None:
    """One throw-away Arrow job that imports every approach's libraries in the Python workers, so that the first
    scenario measured does not pay Spark's or the imports' one-off start-up (the later ones would not)."""

    def touch(batches: Any) -> Any:
        import contextlib
        import importlib

        for name in ("requests", "spark_aoai.transformers", "openai", "openaivec.spark_ext"):
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
        yield from batches

    df = spark.range(8).repartition(4)
    df.mapInArrow(touch, df.schema).count()


def run_scenario(spark: Any, emu: Emulator, scenario: Scenario, skip: list[str]) -> list[list[str]]:
    emu.configure(rate_limit=scenario.rate_limit, faults=scenario.faults)
    rows = [(i, prompt(i, scenario.prompt_chars)) for i in range(scenario.rows)]
    df = spark.createDataFrame(rows, "id long, prompt string").repartition(scenario.partitions).cache()
    df.count()
    approaches: list[tuple[str, Any]] = []
    if "spark_aoai" not in skip:
        stage = ChatCompletion(
            deploymentName=DEPLOYMENT,
            promptCol="prompt",
            endpoint=emu.endpoint,
            apiKey="bench",
            systemPrompt="You are a helpful assistant.",
        )
        approaches.append(("spark_aoai ChatCompletion", lambda: stage.transform(df)))
    if "seed" not in skip:
        ask = seed_udf(emu.endpoint)
        approaches.append(("seed: requests.post per row", lambda: df.withColumn("response", ask("prompt"))))
    if "openaivec" not in skip:
        from openaivec.spark_ext import responses_udf

        ask_vec = responses_udf(instructions="You are a helpful assistant.", model_name=DEPLOYMENT)
        approaches.append(("openaivec responses_udf", lambda: df.withColumn("response", ask_vec("prompt"))))

    table = []
    for name, build in approaches:
        emu.configure(rate_limit=scenario.rate_limit, faults=scenario.faults)  # fresh buckets
        emu.reset_stats()
        out = build()
        holder: dict[str, Any] = {}

        def action(out: Any = out, holder: dict[str, Any] = holder) -> None:
            try:
                holder["rows"] = out.select("id", "response").cache()
                holder["rows"].count()
            except Exception as exc:  # a peer that fails the whole job still gets a line
                holder["failure"] = f"{type(exc).__name__}"

        m = measure(name, scenario.rows, action)
        stats = emu.stats(inputs=False)
        requests_by_status: dict[str, int] = {}
        for key, count in stats["requests"].items():
            status = key.split()[-1]
            requests_by_status[status] = requests_by_status.get(status, 0) + count
        total = sum(requests_by_status.values())
        ok = requests_by_status.get("200", 0)
        throttled = requests_by_status.get("429", 0)
        span = (stats["last_answer_at"] or 0) - (stats["first_request_at"] or 0)
        admitting = (stats["last_admitted_at"] or 0) - (stats["first_request_at"] or 0)
        if "failure" in holder:
            error_rows = f"job failed ({holder['failure']})"
        else:
            error_rows = str(holder["rows"].where("response is null").count())
            holder["rows"].unpersist()
        service_rps = ok / span if span > 0 else 0.0
        if scenario.token_limit:  # tokens admitted per second over the budget
            fraction = f"{stats['admitted_tokens'] / span / scenario.token_limit:.2f}" if span else "-"
            job_fraction = f"{stats['admitted_tokens'] / m.seconds / scenario.token_limit:.2f}"
        elif scenario.request_limit:
            fraction = f"{service_rps / scenario.request_limit:.2f}"
            job_fraction = f"{ok / m.seconds / scenario.request_limit:.2f}"
        else:  # partitions x concurrency / latency, at the concurrency the scenario names (the old default)
            concurrency = scenario.ideal_concurrency or ChatCompletion().getOrDefault("concurrency")
            ideal = scenario.partitions * concurrency / (scenario.faults.latency_ms / 1000)
            fraction, job_fraction = f"{service_rps / ideal:.2f}", f"{ok / m.seconds / ideal:.2f}"
        admitted_fraction = "-"
        if scenario.request_limit and not scenario.token_limit and admitting > 0:
            admitted_fraction = f"{ok / admitting / scenario.request_limit:.2f}"
        if "failure" in holder:
            fraction = job_fraction = "-"  # a failed job's partial run says nothing about its use of the limit
        startup = (stats["first_request_at"] or 0) - time.time() + time.perf_counter() - m.extra["started"]
        table.append(
            [
                name,
                f"{m.seconds:.1f}",
                f"{startup:.1f}",
                f"{scenario.rows / m.seconds:.1f}",
                f"{ok / m.seconds:.1f}",
                f"{service_rps:.1f}",
                fraction,
                job_fraction,
                error_rows,
                f"{total}",
                f"{100 * throttled / total:.1f}%" if total else "-",
                f"{m.cpu_seconds:.1f}",
                admitted_fraction,
                f"{m.extra['worker_peak_rss'] / 2**20:.0f}",
            ]
        )
    df.unpersist()
    return table


# Each approach runs in the Spark set-up it needs: spark_aoai and the seed with Spark's defaults (Python workers
# reused), openaivec with worker reuse off (its second task in a reused worker fails with "Event loop is closed").
SESSIONS = [(["spark_aoai", "seed"], True), (["openaivec"], False)]
HEADERS = [
    "approach",
    "job s",
    "1st request at s",
    "rows/s",
    "ok req/s (job)",
    "ok req/s (service)",
    "of limit (service)",
    "of limit (job)",
    "error rows",
    "requests",
    "429 share",
    "client CPU s",
    "of limit (to last admitted)",
    "peak worker RSS MiB",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", nargs="*", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument("--skip", nargs="*", default=[], choices=["spark_aoai", "seed", "openaivec"])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each scenario, one line each (the spread)")
    args = parser.parse_args()
    tables: dict[str, list[list[str]]] = {key: [] for key in args.scenario}
    with Emulator(process=True) as emu:
        point_openaivec_at(emu.endpoint)
        for names, reuse in SESSIONS:
            if all(name in args.skip for name in names):
                continue
            skip = [name for name in ("spark_aoai", "seed", "openaivec") if name not in names or name in args.skip]
            spark = spark_session(cores=4, reuse_workers=reuse)
            warm_up(spark)
            for key in args.scenario:
                for _ in range(args.repeat):
                    tables[key] += run_scenario(spark, emu, SCENARIOS[key], skip)
            spark.stop()
    for key in args.scenario:
        scenario = SCENARIOS[key]
        title = f"\n{scenario.name}; {scenario.rows} rows in {scenario.partitions} partitions"
        print_table(title, HEADERS, tables[key])


if __name__ == "__main__":
    main()
