"""Structured Streaming: ChatCompletion and Embedding over a file stream, run micro-batch by micro-batch and
restarted from its checkpoint, against the emulator."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from pyspark.sql import functions as F

from spark_aoai import ChatCompletion, Embedding, chat_udf
from spark_aoai.emulator import chat_reply, embed_text

SCHEMA = "file int, id int, prompt string"
ROWS_PER_FILE = 5
TIMEOUT_SECONDS = 180


def prompt_for(file_no: int, row_id: int) -> str:
    return f"File {file_no}, question {row_id}: what is {file_no} times {row_id}?"


def add_file(folder: Path, file_no: int) -> None:
    """Write one JSON-lines file under a hidden name, then rename it: the source never lists a partial file."""
    rows = [{"file": file_no, "id": i, "prompt": prompt_for(file_no, i)} for i in range(ROWS_PER_FILE)]
    partial = folder / f".part-{file_no:02d}.json.tmp"
    partial.write_text("".join(json.dumps(row) + "\n" for row in rows))
    os.replace(partial, folder / f"part-{file_no:02d}.json")


def answer(prompt: str) -> str:
    return chat_reply([{"role": "user", "content": prompt}])


def stream_of(spark, source: Path):
    # One file per micro-batch, so that each run has more than one.
    return spark.readStream.schema(SCHEMA).option("maxFilesPerTrigger", 1).json(str(source))


def chat(endpoint: str) -> ChatCompletion:
    return ChatCompletion(
        deploymentName="gpt-4o", promptCol="prompt", outputCol="response", errorCol="chat_error", endpoint=endpoint
    )


def embed_answers(endpoint: str) -> Embedding:
    return Embedding(
        deploymentName="text-embedding-3-small",
        inputCol="response",
        outputCol="embedding",
        errorCol="embedding_error",
        endpoint=endpoint,
    )


def run_until_caught_up(writer) -> list[dict]:
    """Start an availableNow query, wait for it to process what is there and stop; its non-empty batches."""
    query = writer.trigger(availableNow=True).start()
    assert query.awaitTermination(TIMEOUT_SECONDS), "the query did not finish"
    assert query.exception() is None, query.exception()
    return [p for p in query.recentProgress if p["numInputRows"] > 0]


def test_file_stream_to_parquet_restarts_from_checkpoint_and_sends_each_row_once(spark, emulator, tmp_path):
    source, sink, checkpoint = tmp_path / "in", tmp_path / "out", tmp_path / "checkpoint"
    source.mkdir()
    ask, embed = chat(emulator.endpoint), embed_answers(emulator.endpoint)

    def run() -> list[dict]:
        enriched = stream_of(spark, source).transform(ask.transform).transform(embed.transform)
        writer = enriched.writeStream.format("parquet").option("path", str(sink))
        return run_until_caught_up(writer.option("checkpointLocation", str(checkpoint)))

    for file_no in (0, 1):
        add_file(source, file_no)
    first = run()
    for file_no in (2, 3):
        add_file(source, file_no)
    second = run()

    # micro-batch by micro-batch; the restart goes on from the checkpoint's next batch, with only the new files
    assert [(p["batchId"], p["numInputRows"]) for p in first] == [(0, ROWS_PER_FILE), (1, ROWS_PER_FILE)]
    assert [(p["batchId"], p["numInputRows"]) for p in second] == [(2, ROWS_PER_FILE), (3, ROWS_PER_FILE)]
    assert sorted(int(name) for name in os.listdir(checkpoint / "commits") if name.isdigit()) == [0, 1, 2, 3]

    rows = spark.read.parquet(str(sink)).collect()
    keys = sorted((r.file, r.id) for r in rows)
    assert keys == [(f, i) for f in range(4) for i in range(ROWS_PER_FILE)]  # every row of every file, once
    for r in rows:
        assert r.chat_error is None and r.embedding_error is None
        assert r.prompt == prompt_for(r.file, r.id)
        assert r.response == answer(r.prompt)
        np.testing.assert_array_equal(np.array(r.embedding, dtype=np.float32), embed_text(r.response, 1536))

    # each prompt was sent to chat once and each answer to embeddings once, across both runs
    prompts = [prompt_for(f, i) for f in range(4) for i in range(ROWS_PER_FILE)]
    expected = {**{p: 1 for p in prompts}, **{answer(p): 1 for p in prompts}}
    stats = emulator.stats()
    assert stats["inputs"] == expected
    assert all(key.endswith(" 200") for key in stats["requests"]), stats["requests"]


def test_foreach_batch_runs_the_stage_on_each_micro_batch(spark, emulator, tmp_path):
    source, sink, checkpoint = tmp_path / "in", tmp_path / "out", tmp_path / "checkpoint"
    source.mkdir()
    for file_no in (0, 1):
        add_file(source, file_no)
    stage = chat(emulator.endpoint)

    def write_batch(batch, batch_id: int) -> None:
        stage.transform(batch).withColumn("batch_id", F.lit(batch_id)).write.mode("append").parquet(str(sink))

    writer = stream_of(spark, source).writeStream.foreachBatch(write_batch)
    batches = run_until_caught_up(writer.option("checkpointLocation", str(checkpoint)))

    assert [p["batchId"] for p in batches] == [0, 1]
    rows = spark.read.parquet(str(sink)).collect()
    assert sorted((r.file, r.id) for r in rows) == [(f, i) for f in range(2) for i in range(ROWS_PER_FILE)]
    files_by_batch = {b: {r.file for r in rows if r.batch_id == b} for b in (0, 1)}
    assert sorted(files_by_batch.values(), key=min) == [{0}, {1}]  # one whole file per micro-batch
    assert all(r.chat_error is None and r.response == answer(r.prompt) for r in rows)
    assert emulator.stats()["inputs"] == {prompt_for(f, i): 1 for f in range(2) for i in range(ROWS_PER_FILE)}


def test_chat_udf_in_a_streaming_select(spark, emulator, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    add_file(source, 0)
    ask = chat_udf(deploymentName="gpt-4o", endpoint=emulator.endpoint)
    answers = stream_of(spark, source).select("file", "id", "prompt", ask(F.col("prompt")).alias("out"))
    writer = answers.writeStream.format("memory").queryName("streamed_udf_answers")
    run_until_caught_up(writer.option("checkpointLocation", str(tmp_path / "checkpoint")))

    rows = spark.table("streamed_udf_answers").collect()
    assert sorted(r.id for r in rows) == list(range(ROWS_PER_FILE))
    assert all(r.out.error is None and r.out.response == answer(r.prompt) for r in rows)
