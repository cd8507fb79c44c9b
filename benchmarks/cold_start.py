"""Cold start: a 4-row chat job on fresh Python workers, spark_aoai side by side with the seed's loop.

    .venv/bin/python benchmarks/cold_start.py [--repeat 5]

Spark runs ``local[2]`` with ``spark.python.worker.reuse=false``, so every job forks new Python workers that
import whatever the job's function needs: this measures what a user pays for the first rows of a notebook
cell. Both approaches run in one session, alternately, after one throw-away Spark job; the figure is the
median wall time of ``--repeat`` actions each.

The package's bytecode is compiled first, as ``pip install`` does for the seed's ``requests``: from a source
checkout with ``PYTHONDONTWRITEBYTECODE=1`` (set on this machine) every fresh worker would otherwise compile
spark_aoai's modules again (~25 ms a worker), which no installed user pays.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import time
from typing import Any

from _harness import print_table, spark_session
from chat_throughput import seed_udf

import spark_aoai
from spark_aoai import ChatCompletion
from spark_aoai.emulator import Emulator

DEPLOYMENT = "gpt-4o"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    compileall.compile_dir(os.path.dirname(spark_aoai.__file__), quiet=1)
    spark = spark_session(cores=2, app="spark_aoai cold start", reuse_workers=False)
    with Emulator(process=True) as emu:
        df = spark.createDataFrame([(i, f"cold question {i}") for i in range(4)], "id int, prompt string")
        df = df.repartition(2).cache()
        df.count()
        stage = ChatCompletion(deploymentName=DEPLOYMENT, promptCol="prompt", endpoint=emu.endpoint, apiKey="bench")
        ask = seed_udf(emu.endpoint)
        approaches: list[tuple[str, Any]] = [
            ("spark_aoai ChatCompletion", lambda: stage.transform(df)),
            ("seed: requests.post per row", lambda: df.withColumn("response", ask("prompt"))),
        ]
        spark.range(4).repartition(2).count()  # the JVM side's first job
        times: dict[str, list[float]] = {name: [] for name, _ in approaches}
        for _ in range(args.repeat):
            for name, build in approaches:
                started = time.perf_counter()
                rows = build().collect()
                times[name].append(time.perf_counter() - started)
                assert len(rows) == 4
    rows_out = [[name, f"{statistics.median(t):.2f}", f"{min(t):.2f}", f"{max(t):.2f}"] for name, t in times.items()]
    print_table(
        f"Cold start: 4 rows, fresh Python workers, local[2], median of {args.repeat}",
        ["approach", "median s", "min s", "max s"],
        rows_out,
    )
    spark.stop()


if __name__ == "__main__":
    main()
