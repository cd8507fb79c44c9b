"""Structured Streaming: answer and embed support tickets as files land in a folder, restartable at any time.

    python examples/streaming.py

A file stream of JSON-lines tickets (one file per micro-batch) goes through ChatCompletion, then Embedding of
each answer, into a Parquet table with a checkpoint. The query runs with trigger(availableNow=True): it
processes the files that are there and stops, as a scheduled job would. Then another file arrives and the same
query starts again from its checkpoint: only the new file is processed, and every ticket is in the table once.

Runs against Azure when AZURE_OPENAI_ENDPOINT is set, else against the bundled emulator. Writes to a
temporary directory, removed at the end.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import azure_or_emulator, local_spark
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from spark_aoai import ChatCompletion, Embedding

CHAT_DEPLOYMENT = os.environ.get("AZURE_OPENAI_CHAT_DEPLOYMENT", "gpt-4.1")
EMBEDDING_DEPLOYMENT = os.environ.get("AZURE_OPENAI_EMBEDDING_DEPLOYMENT", "text-embedding-3-small")
TICKET_SCHEMA = "ticket_id int, question string"
# Files as they arrive: the first two before the first run, the last one before the restart.
TICKET_FILES = [
    [(1, "How do I reset my password?"), (2, "Can I export my invoices as CSV?"), (3, "The app crashes on start.")],
    [(4, "Where do I change my billing address?"), (5, "Is there a dark mode?")],
    [(6, "How do I delete my account?"), (7, "Can two people share one licence?"), (8, "Why was I charged twice?")],
]


def drop_file(folder: Path, number: int, tickets: list[tuple[int, str]]) -> None:
    """Write under a hidden name, then rename: a running query never sees half a file."""
    partial = folder / f".tickets-{number:03d}.json.tmp"
    partial.write_text("".join(json.dumps({"ticket_id": i, "question": q}) + "\n" for i, q in tickets))
    os.replace(partial, folder / f"tickets-{number:03d}.json")


def run_until_caught_up(spark: SparkSession, endpoint: str | None, root: Path) -> list[tuple[int, int]]:
    """Start the query on what is in ``root/incoming``, wait until it stops; (batch id, rows) of each batch."""
    answer = ChatCompletion(
        deploymentName=CHAT_DEPLOYMENT,
        promptCol="question",
        systemPrompt="You are a support agent. Answer in one sentence.",
        outputCol="answer",
        errorCol="answer_error",
        endpoint=endpoint,
    )
    embed = Embedding(
        deploymentName=EMBEDDING_DEPLOYMENT,
        inputCol="answer",
        outputCol="answer_embedding",
        errorCol="embedding_error",
        endpoint=endpoint,
    )
    tickets = spark.readStream.schema(TICKET_SCHEMA).option("maxFilesPerTrigger", 1).json(str(root / "incoming"))
    query = (
        tickets.transform(answer.transform)
        .transform(embed.transform)
        .writeStream.format("parquet")
        .option("path", str(root / "answers"))
        .option("checkpointLocation", str(root / "checkpoint"))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    return [(p["batchId"], p["numInputRows"]) for p in query.recentProgress if p["numInputRows"] > 0]


def answer_tickets(spark: SparkSession, endpoint: str | None, root: Path) -> dict:
    """Two runs of the query, with a file arriving in between; what each run did and what the table holds."""
    incoming = root / "incoming"
    incoming.mkdir(parents=True)
    for number, tickets in enumerate(TICKET_FILES[:2]):
        drop_file(incoming, number, tickets)
    first = run_until_caught_up(spark, endpoint, root)
    drop_file(incoming, 2, TICKET_FILES[2])
    second = run_until_caught_up(spark, endpoint, root)
    table = spark.read.parquet(str(root / "answers"))
    totals = table.agg(
        F.count("*").alias("rows"),
        F.countDistinct("ticket_id").alias("tickets"),
        F.count(F.coalesce("answer_error", "embedding_error")).alias("errors"),
    ).first()
    dims = F.size("answer_embedding").alias("dims")
    sample = table.orderBy("ticket_id").select("ticket_id", "question", "answer", dims).limit(3).collect()
    return {
        "runs": [first, second],
        "rows": totals.rows,
        "tickets": totals.tickets,
        "errors": totals.errors,
        "sample": sample,
    }


def main() -> int:
    spark = local_spark("spark_aoai structured streaming")
    with azure_or_emulator() as endpoint, tempfile.TemporaryDirectory(prefix="spark_aoai-streaming-") as tmp:
        result = answer_tickets(spark, endpoint, Path(tmp))
    for run, batches in enumerate(result["runs"], start=1):
        done = ", ".join(f"micro-batch {batch_id}: {rows} rows" for batch_id, rows in batches)
        print(f"run {run}{' (restarted from the checkpoint)' if run > 1 else ''}: {done}")
    for row in result["sample"]:
        print(f"ticket {row.ticket_id}: {row.question} -> {row.answer} [{row.dims} dimensions]")
    expected = sum(len(tickets) for tickets in TICKET_FILES)
    print(
        f"answers table: {result['rows']} rows for {result['tickets']} tickets (of {expected} sent), "
        f"{result['errors']} with an error value"
    )
    spark.stop()
    return 0 if result["rows"] == result["tickets"] == expected and result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
