"""Run by test_connect.py in its own process: the stages through a Spark Connect client.

Prints one JSON line: chat rows, vector lengths (with a failed row), save/load and Pipeline round trips, a
UDF with usage, the same chat in batch mode, and the row error recovered from a systemic failure.
"""

from __future__ import annotations

import json
import sys
import tempfile


def main(remote: str, endpoint: str) -> None:
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(remote).getOrCreate()
    from spark_aoai import ChatCompletion, Embedding, chat_udf, failure_of

    df = spark.createDataFrame([(i, f"connect question {i}") for i in range(20)], "id int, prompt string")
    chat = ChatCompletion(deploymentName="gpt-4o", promptCol="prompt", endpoint=endpoint, apiKey="connect-key")
    chat.setParams(usageCol="usage")
    one_null = [(i, f"connect question {i}" if i else None) for i in range(20)]
    counted = chat.transform(spark.createDataFrame(one_null, "id int, prompt string").repartition(2)).collect()
    stats = chat.statistics().as_dict()
    stats["usage_total"] = sum(r.usage.total_tokens for r in counted if r.usage is not None)
    chat.clear(chat.usageCol)
    rows = chat.transform(df.repartition(2)).collect()
    emb = Embedding(
        deploymentName="text-embedding-3-small",
        inputCol="prompt",
        endpoint=endpoint,
        apiKey="connect-key",
        dimensions=8,
    )
    vectors = emb.transform(df).collect()
    with_null = spark.createDataFrame([(1, "a text"), (2, None)], "id int, prompt string")
    as_vector = emb.copy({emb.outputType: "vector"}).transform(with_null).orderBy("id").collect()

    folder = tempfile.mkdtemp()
    chat.save(f"{folder}/chat")
    loaded = ChatCompletion.load(f"{folder}/chat").setCredentials(apiKey="connect-key")
    reloaded = loaded.transform(df.limit(3)).collect()
    pipeline = Pipeline(stages=[chat, emb.copy({emb.errorCol: "emb_error", emb.outputCol: "vec"})]).fit(df)
    pipeline.save(f"{folder}/pipeline")
    for stage in PipelineModel.load(f"{folder}/pipeline").stages:
        stage.setCredentials(apiKey="connect-key")
    piped = PipelineModel.load(f"{folder}/pipeline")
    for stage in piped.stages:
        stage.setCredentials(apiKey="connect-key")
    piped_rows = piped.transform(df.limit(4)).collect()

    ask = chat_udf(deploymentName="gpt-4o", endpoint=endpoint, apiKey="connect-key", usageCol="usage")
    udf_rows = df.limit(2).select(ask("prompt").alias("o")).select("o.response", "o.usage.prompt_tokens").collect()

    in_batch = chat.copy({chat.mode: "batch", chat.batchDir: tempfile.mkdtemp(), chat.batchPollSeconds: 0.2})
    batch_rows = in_batch.setCredentials(apiKey="connect-key").transform(df.repartition(2)).collect()

    wrong = ChatCompletion(deploymentName="gpt-4o", promptCol="prompt", endpoint=endpoint, apiKey="wrong-key-123456")
    try:
        wrong.transform(df).collect()
        systemic = None
    except Exception as exc:
        systemic = failure_of(exc)
    print(
        json.dumps(
            {
                "session": type(spark).__module__,
                "rows": [
                    {
                        "id": r.id,
                        "prompt": r.prompt,
                        "response": r.response,
                        "error": None if r.error is None else r.error.asDict(),
                    }
                    for r in rows
                ],
                "vectors": [len(r.embedding) if r.embedding is not None else None for r in vectors],
                "as_vector": [None if r.embedding is None else len(r.embedding.toArray()) for r in as_vector],
                "as_vector_errors": [None if r.error is None else r.error.code for r in as_vector],
                "reloaded_errors": [r.error for r in reloaded],
                "piped": [(r.error is None, r.emb_error is None, len(r.vec)) for r in piped_rows],
                "udf": [(r.response is not None, r.prompt_tokens) for r in udf_rows],
                "systemic": systemic,
                "statistics": stats,
                "batch": sorted((r.id, r.response, r.error is None) for r in batch_rows),
            }
        )
    )
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
