"""A batch-mode chat job for the restart test, run in its own process (and its own Spark):

    python tests/batch_job.py ENDPOINT BATCH_DIR ROWS

It submits, then waits for the batches; the test kills it (the driver and its Spark) while they run.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    endpoint, batch_dir, rows = sys.argv[1:4]
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    from tests.test_batch import batch_chat, questions

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    batch_chat(endpoint, batch_dir).transform(questions(spark, int(rows))).collect()


if __name__ == "__main__":
    main()
