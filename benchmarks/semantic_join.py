"""ai.join's cost beside the naive plan (issue #28): 2,000 x 2,000 with generated matches (emulator latency
--latency-ms, default 20 ms), then 10,000 x 10,000 counted with latency 0. The naive plan (every pair one
check) is counted, never run.

    cd benchmarks && ../.venv/bin/python semantic_join.py [--sizes 2000 10000] [--latency-ms 20]

Prints, per size: the pairs the LLM decided, chat requests (packed, rowsPerRequest=25), embedding requests,
recall against the full pairwise ground truth, and wall time.
"""

from __future__ import annotations

import argparse
import time

from _harness import print_table, spark_session

from spark_aoai import ai
from spark_aoai.emulator import Emulator, Faults
from tests.semantic_data import join_sides, join_truth

CONDITION = "{left.name} and {right.title} name the same thing"


def run(spark, endpoint: str, rows: int) -> dict:
    left, right = join_sides(rows)
    truth = join_truth(left, right)
    lefts = spark.createDataFrame(list(enumerate(left)), "id int, name string").repartition(4)
    rights = spark.createDataFrame(list(enumerate(right)), "id int, title string").repartition(4)
    started = time.perf_counter()
    out = ai.join(
        lefts, rights, CONDITION, deploymentName="gpt-4o", endpoint=endpoint, apiKey="sk-bench",
        embeddingDeploymentName="text-embedding-3-small", dimensions=256, rowsPerRequest=25, concurrency=32,
    )  # fmt: skip
    found = {(r.left_id, r.right_id) for r in out.select("left_id", "right_id").collect()}
    seconds = time.perf_counter() - started
    stats = out.statistics()
    return {
        "rows": f"{rows:,} x {rows:,}",
        "naive checks": f"{stats['naive_pair_checks']:,}",
        "pairs checked": f"{stats['pair_checks']:,}",
        "chat requests": f"{stats['chat_requests']:,}",
        "embedding requests": f"{stats['embed_left_requests'] + stats['embed_right_requests']:,}",
        "recall": f"{len(found & truth) / len(truth):.3f}",
        "wall s": f"{seconds:.1f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args()
    spark = spark_session(cores=2, app="spark_aoai semantic join")
    table = []
    with Emulator(process=True) as emulator:
        for size in args.sizes:
            latency = args.latency_ms if size <= 2000 else 0.0  # the large join is counted, not timed for latency
            emulator.configure(faults=Faults(latency_ms=latency))
            table.append(run(spark, emulator.endpoint, size))
    header = list(table[0])
    print_table("ai.join (issue #28)", header, [[row[h] for h in header] for row in table])
    spark.stop()


if __name__ == "__main__":
    main()
