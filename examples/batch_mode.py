"""Enrich a table through Azure's Batch API at half the price: submit, come back later, join the answers.

    python examples/batch_mode.py [BATCH_DIR]

Runs against Azure when AZURE_OPENAI_ENDPOINT is set (a Global Batch deployment named by BATCH_DEPLOYMENT,
default gpt-4o-batch), else against the bundled emulator, whose batches finish in a fraction of a second.
BATCH_DIR (default: a temporary directory) keeps the job's manifest: run the script twice with the same
directory and the second run submits nothing, it reads the first run's batches.
"""

from __future__ import annotations

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import azure_or_emulator, local_spark
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_aoai import ChatCompletion

# A Global Batch deployment of gpt-4o; the emulator is told of the name (it serves only names it knows).
DEPLOYMENT = os.environ.get("BATCH_DEPLOYMENT", "gpt-4o-batch")
TICKETS = [
    "My invoice for March shows the wrong VAT number.",
    "The mobile app logs me out every few minutes since the last update.",
    "Please add an export of the audit log to CSV.",
    None,  # a row with nothing to ask: an error value, no request
]


def summarize_tickets(spark: SparkSession, endpoint: str | None, batch_dir: str) -> tuple[DataFrame, dict]:
    """Each ticket's one-line summary (and its usage), answered by a batch job; the job's status."""
    tickets = spark.createDataFrame([(i, t) for i, t in enumerate(TICKETS)], "ticket_id int, text string")
    stage = ChatCompletion(
        deploymentName=DEPLOYMENT,
        endpoint=endpoint,
        promptTemplate="Summarize this support ticket in one line: {text}",
        outputCol="summary",
        usageCol="usage",
        mode="batch",
        batchDir=batch_dir,
        batchPollSeconds=1.0 if endpoint else 60.0,  # the emulator is quick; Azure takes minutes to hours
    )
    job = stage.submit(tickets)  # returns once the batches are created
    print(f"submitted: {job.status()}")
    answers = stage.transform(tickets)  # waits for them (up to batchTimeoutHours), then joins
    return answers.orderBy("ticket_id"), job.status(poll=True)


def main() -> None:
    batch_dir = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="spark_aoai_batches_")
    spark = local_spark("spark_aoai batch mode")
    with azure_or_emulator(extra_deployments={DEPLOYMENT: "gpt-4o"}) as endpoint:
        answers, status = summarize_tickets(spark, endpoint, batch_dir)
        for row in answers.select("ticket_id", "summary", F.col("error.code").alias("error")).collect():
            print(f"{row.ticket_id}: {row.summary or row.error}")
        print(f"batches: {status['status']}, requests done: {status['completed']}/{status['total']}")
        print(f"manifest kept in {batch_dir}")
    spark.stop()


if __name__ == "__main__":
    main()
