"""What statistics, the progress line and the spend cap cost a job: the same chat job with each on and off.

    PYTHONPATH=. python benchmarks/usage_overhead.py [rows] [repeats]

A CPU-bound job (the emulator answers at once, 2 partitions, local[2]), so any overhead on the engine's path
shows; the runs alternate so drift hits every setting alike. Prints the median seconds per setting.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

os.environ["PYSPARK_PYTHON"] = sys.executable


def main(rows: int, repeats: int) -> None:
    from pyspark.sql import SparkSession

    from spark_aoai import ChatCompletion
    from spark_aoai.emulator import Emulator

    spark = (
        SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1").getOrCreate()
    )  # fmt: skip
    spark.sparkContext.setLogLevel("ERROR")
    settings = {
        "progress off": {"progress": False},
        "progress on": {"progress": True},
        "cap on (never reached)": {"progress": False, "maxTotalTokens": 10**12},
    }
    times: dict[str, list[float]] = {name: [] for name in settings}
    with Emulator(process=True) as emu:
        df = spark.createDataFrame([(i, f"question {i} about usage") for i in range(rows)], "id int, prompt string")
        df = df.repartition(2).cache()
        df.count()
        for _ in range(repeats + 1):  # the first round warms the workers up and is not counted
            for name, params in settings.items():
                stage = ChatCompletion(deploymentName="gpt-4o", promptCol="prompt", endpoint=emu.endpoint, apiKey="k",
                                       concurrency=16, **params)  # fmt: skip
                started = time.perf_counter()
                stage.transform(df).write.format("noop").mode("overwrite").save()
                times[name].append(time.perf_counter() - started)
    for name, values in times.items():
        print(f"{name:24s} median {statistics.median(values[1:]):.2f} s  (runs {[round(v, 2) for v in values[1:]]})")
    spark.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4000, int(sys.argv[2]) if len(sys.argv) > 2 else 3)
