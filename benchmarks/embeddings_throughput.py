"""Embed N texts at 1,536 dimensions against the emulator (zero latency): spark_aoai vs the seed vs openaivec.

    .venv/bin/pip install -e ".[bench]"
    .venv/bin/python benchmarks/embeddings_throughput.py [--rows 100000] [--partitions 2]

Prints rows/s and the CPU seconds of Spark's Python workers (the client side) for each approach, in one run
against one emulator process:

- spark_aoai: ``Embedding`` with default settings (batched base64 requests, dedup, numpy decoding);
- seed: one ``requests.post`` per row in a pandas UDF, float JSON (the hand-written loop users have today);
- openaivec: ``embeddings_udf`` with default settings, pointed at the emulator's v1 path.

``--sliding-tpm N`` puts the deployment behind a sliding 60 s token window of N tokens (no limit headers,
whole-second ``Retry-After``: Microsoft's aoai-api-simulator), 200 ms per answer, and reports how long the job took
from its first request to its last admitted one beside the best any client could do with the same requests: a
client that sends each request the moment the window has room for it (the window's own arithmetic, replayed).
"""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd
from _harness import measure, point_openaivec_at, print_table, spark_session

from spark_aoai import Embedding
from spark_aoai.emulator import Emulator, Faults, RateLimit
from spark_aoai.emulator._limiter import SlidingWindow

DEPLOYMENT = "text-embedding-3-small"


def texts(n: int) -> list[tuple[int, str]]:
    words = ["data", "spark", "azure", "lakehouse", "review", "product", "vector", "search", "table", "quota"]
    return [
        (i, f"document {i}: {words[i % 10]} {words[(i // 10) % 10]} {words[(i // 100) % 10]} notes") for i in range(n)
    ]


def seed_udf(endpoint: str):  # type: ignore[no-untyped-def]
    from pyspark.sql.functions import pandas_udf
    from pyspark.sql.types import ArrayType, FloatType

    url = f"{endpoint}/openai/deployments/{DEPLOYMENT}/embeddings?api-version=2024-10-21"

    @pandas_udf(ArrayType(FloatType()))
    def embed(batch: pd.Series) -> pd.Series:
        import requests

        out = []
        for text in batch:
            response = requests.post(url, headers={"api-key": "bench"}, json={"input": text})
            out.append(response.json()["data"][0]["embedding"] if response.status_code == 200 else None)
        return pd.Series(out)

    return embed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed-rows", type=int, default=None, help="rows for the seed loop (default: --rows)")
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--skip", nargs="*", default=[], choices=["spark_aoai", "seed", "openaivec"])
    parser.add_argument("--sliding-tpm", type=int, help="a sliding 60 s window of this many tokens per minute")
    args = parser.parse_args()
    limit = RateLimit(tokens_per_minute=args.sliding_tpm, window="sliding", limit_headers=False, retry_after="seconds")

    with Emulator(process=True) as emu:
        point_openaivec_at(emu.endpoint)
        spark = spark_session()
        df = spark.createDataFrame(texts(args.rows), "id long, text string").repartition(args.partitions).cache()
        df.count()
        seed_rows = args.seed_rows or args.rows
        seed_df = df.limit(seed_rows).repartition(args.partitions).cache() if seed_rows < args.rows else df
        seed_df.count()

        def run(out, column: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
            if args.sliding_tpm:
                emu.configure(rate_limit=limit, faults=Faults(latency_ms=200))  # a fresh window
            emu.reset_stats()
            out.write.format("noop").mode("overwrite").save()
            stats = emu.stats(inputs=False)
            return {"requests": sum(stats["requests"].values()), "stats": stats}

        results = []
        if "spark_aoai" not in args.skip:
            stage = Embedding(
                deploymentName=DEPLOYMENT, inputCol="text", outputCol="embedding", endpoint=emu.endpoint, apiKey="bench"
            )
            results.append(measure("spark_aoai Embedding", args.rows, lambda: run(stage.transform(df), "embedding")))
        if "openaivec" not in args.skip:
            from openaivec.spark_ext import embeddings_udf

            udf = embeddings_udf(model_name=DEPLOYMENT)
            results.append(
                measure(
                    "openaivec embeddings_udf",
                    args.rows,
                    lambda: run(df.withColumn("embedding", udf("text")), "embedding"),
                )
            )
        if "seed" not in args.skip:
            udf = seed_udf(emu.endpoint)
            results.append(
                measure(
                    "seed: requests.post per row",
                    seed_rows,
                    lambda: run(seed_df.withColumn("embedding", udf("text")), "embedding"),
                )
            )
        spark.stop()

    if args.sliding_tpm:
        print_table(
            f"Embeddings under a sliding 60 s window of {args.sliding_tpm:,} tokens, {args.rows:,} texts, "
            f"{args.partitions} partitions, 200 ms per answer",
            ["approach", "job s", "requests", "429 share", "tokens per request", "to last admitted s", "best s",
             "of the best"],
            [sliding_row(m, args.sliding_tpm) for m in results],
        )  # fmt: skip
        return
    print_table(
        f"Embeddings, {args.rows:,} texts x 1536 dims, {args.partitions} partitions, local[2], emulator latency 0",
        ["approach", "rows", "seconds", "rows/s", "client CPU s", "Spark JVM CPU s", "emulator CPU s", "requests"],
        [
            [
                m.name,
                f"{m.rows:,}",
                f"{m.seconds:.1f}",
                f"{m.rows_per_second:,.0f}",
                f"{m.cpu_seconds:.1f}",
                f"{m.extra['jvm_cpu']:.1f}",
                f"{m.extra['emulator_cpu']:.1f}",
                f"{m.extra.get('requests', 0):,}",
            ]
            for m in results
        ],
    )


def best_seconds(requests: int, cost: float, tokens_per_minute: int) -> float:
    """First request to last admission for a client that sends each request once the window has room for it."""
    window, now = SlidingWindow(float(tokens_per_minute), 60.0), 0.0
    for _ in range(requests):
        now += window.wait(cost, now)
        window.charge(cost, now)
    return now


def sliding_row(m: Any, tokens_per_minute: int) -> list[str]:
    stats = m.extra["stats"]
    ok = sum(n for key, n in stats["requests"].items() if key.endswith(" 200"))
    throttled = sum(n for key, n in stats["requests"].items() if key.endswith(" 429"))
    total = ok + throttled
    cost = stats["admitted_tokens"] / ok if ok else 0.0
    actual = (stats["last_admitted_at"] or 0) - (stats["first_request_at"] or 0)
    best = best_seconds(ok, cost, tokens_per_minute)
    return [
        m.name,
        f"{m.seconds:.1f}",
        f"{total}",
        f"{100 * throttled / total:.1f}%" if total else "-",
        f"{cost:,.0f}",
        f"{actual:.1f}",
        f"{best:.1f}",
        f"{best / actual:.2f}" if actual > 0 else "-",
    ]


if __name__ == "__main__":
    main()
