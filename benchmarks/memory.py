"""Peak RSS of Spark's Python workers while embedding many short texts: flat however large the partition.

    .venv/bin/python benchmarks/memory.py [--rows 250000 1000000] [--partitions 2] [--dimensions 1536]

Each size runs ``Embedding`` (default settings) over N short texts in 2 partitions against the emulator and
samples the RSS of every Python worker every 50 ms. Flat memory means the peak does not grow with N.
"""

from __future__ import annotations

import argparse

from _harness import measure, print_table, spark_session

from spark_aoai import Embedding
from spark_aoai.emulator import Emulator


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="*", default=[250_000, 1_000_000])
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--dimensions", type=int, default=1536)
    args = parser.parse_args()
    table = []
    with Emulator(process=True) as emu:
        spark = spark_session(cores=2)
        for rows in args.rows:
            df = (
                spark.range(rows)
                .selectExpr("id", "concat('short text number ', id) as text")
                .repartition(args.partitions)
            )
            stage = Embedding(
                deploymentName="text-embedding-3-small",
                inputCol="text",
                endpoint=emu.endpoint,
                apiKey="bench",
                dimensions=args.dimensions,
            )
            m = measure(
                "spark_aoai Embedding",
                rows,
                lambda df=df, stage=stage: stage.transform(df).write.format("noop").mode("overwrite").save(),
            )
            table.append(
                [
                    f"{rows:,}",
                    f"{rows // args.partitions:,}",
                    f"{m.seconds:.1f}",
                    f"{m.rows_per_second:,.0f}",
                    f"{m.extra['worker_peak_rss'] / 2**20:,.0f}",
                ]
            )
        spark.stop()
    print_table(
        f"Embedding memory, {args.dimensions} dims, {args.partitions} partitions, local[2]",
        ["texts", "per partition", "seconds", "rows/s", "peak worker RSS MiB"],
        table,
    )


if __name__ == "__main__":
    main()
