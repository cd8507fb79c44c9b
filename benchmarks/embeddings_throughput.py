"""Embed N texts at 1,536 dimensions against the emulator (zero latency): spark_aoai vs the seed vs openaivec.

    .venv/bin/pip install -e ".[bench]"
    .venv/bin/python benchmarks/embeddings_throughput.py [--rows 100000] [--partitions 2]

Prints rows/s and the CPU seconds of Spark's Python workers (the client side) for each approach, in one run
against one emulator process:

- spark_aoai: ``Embedding`` with default settings (batched base64 requests, dedup, numpy decoding);
- seed: one ``requests.post`` per row in a pandas UDF, float JSON (the hand-written loop users have today);
- openaivec: ``embeddings_udf`` with default settings, pointed at the emulator's v1 path.
"""

from __future__ import annotations

import argparse

import pandas as pd
from _harness import measure, point_openaivec_at, print_table, spark_session

from spark_aoai import Embedding
from spark_aoai.emulator import Emulator

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
    args = parser.parse_args()

    with Emulator(process=True) as emu:
        point_openaivec_at(emu.endpoint)
        spark = spark_session()
        df = spark.createDataFrame(texts(args.rows), "id long, text string").repartition(args.partitions).cache()
        df.count()
        seed_rows = args.seed_rows or args.rows
        seed_df = df.limit(seed_rows).repartition(args.partitions).cache() if seed_rows < args.rows else df
        seed_df.count()

        def run(out, column: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
            emu.reset_stats()
            out.write.format("noop").mode("overwrite").save()
            return {"requests": sum(emu.stats(inputs=False)["requests"].values())}

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


if __name__ == "__main__":
    main()
