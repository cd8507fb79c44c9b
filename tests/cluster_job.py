"""Run by test_cluster.py in its own process: ChatCompletion on a standalone cluster, result as JSON on stdout."""

from __future__ import annotations

import json
import os
import sys

os.environ["PYSPARK_PYTHON"] = sys.executable


def main(master: str, endpoint: str, package_zip: str) -> None:
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master(master)
        .appName("spark_aoai-cluster-test")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.executor.memory", "512m")
        .config("spark.cores.max", "2")
        .config("spark.submit.pyFiles", package_zip)
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    from spark_aoai import ChatCompletion

    df = spark.createDataFrame([(i, f"cluster question {i}") for i in range(60)], "id int, prompt string")
    stage = ChatCompletion(
        deploymentName="gpt-4o",
        promptCol="prompt",
        endpoint=endpoint,
        apiKey="cluster-key",
        systemPrompt="Answer briefly.",
    )
    rows = stage.transform(df.repartition(3)).collect()

    def where_am_i(batches):
        import pandas as pd

        import spark_aoai

        for _ in batches:
            yield pd.DataFrame({"pid": [os.getpid()], "module": [spark_aoai.__file__]})

    probes = df.repartition(2).mapInPandas(where_am_i, "pid long, module string").collect()
    print(
        json.dumps(
            {
                "rows": [
                    {
                        "id": r.id,
                        "prompt": r.prompt,
                        "response": r.response,
                        "error": r.error.asDict() if r.error else None,
                    }
                    for r in rows
                ],
                "driver_pid": os.getpid(),
                "executor_pids": sorted({p.pid for p in probes}),
                "executor_modules": sorted({p.module for p in probes}),
            }
        )
    )
    spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:4])
