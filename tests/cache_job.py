"""A chat job with a cacheDir for the crash tests, run in its own process (and its own Spark):

    python tests/cache_job.py ENDPOINT CACHE_DIR OUT_DIR ROWS MASTER [KILL_MARKER KILL_AFTER_SECONDS]

With a kill marker, the first task to start creates the marker and has its Python worker killed (SIGKILL)
after KILL_AFTER_SECONDS: Spark retries that task (MASTER ``local[2,3]`` allows 3 attempts).
"""

from __future__ import annotations

import os
import signal
import sys
import threading


def killing_provider(marker: str, after: float):
    def provider() -> str:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return "token"
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        threading.Timer(after, os.kill, (os.getpid(), signal.SIGKILL)).start()
        return "token"

    return provider


def main() -> None:
    endpoint, cache_dir, out_dir, rows, master = sys.argv[1:6]
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from spark_aoai import ChatCompletion

    spark = (
        SparkSession.builder.master(master)
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "50")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    credential = {}
    if len(sys.argv) > 6:
        credential = {"tokenProvider": killing_provider(sys.argv[6], float(sys.argv[7]))}
    df = spark.range(0, int(rows), 1, 2).select("id", F.concat(F.lit("resume prompt "), F.col("id")).alias("prompt"))
    stage = ChatCompletion(
        deploymentName="gpt-4o", promptCol="prompt", endpoint=endpoint, cacheDir=cache_dir, concurrency=4, **credential
    )
    stage.transform(df).write.mode("overwrite").parquet(out_dir)
    spark.stop()


if __name__ == "__main__":
    main()
