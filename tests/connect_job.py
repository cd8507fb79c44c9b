"""Run by test_connect.py in its own process: ChatCompletion and Embedding through a Spark Connect client."""

from __future__ import annotations

import json
import sys


def main(remote: str, endpoint: str) -> None:
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(remote).getOrCreate()
    from spark_aoai import ChatCompletion, Embedding

    df = spark.createDataFrame([(i, f"connect question {i}") for i in range(20)], "id int, prompt string")
    chat = ChatCompletion(deploymentName="gpt-4o", promptCol="prompt", endpoint=endpoint, apiKey="connect-key")
    rows = chat.transform(df.repartition(2)).collect()
    emb = Embedding(
        deploymentName="text-embedding-3-small",
        inputCol="prompt",
        endpoint=endpoint,
        apiKey="connect-key",
        dimensions=8,
    )
    vectors = emb.transform(df).collect()
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
            }
        )
    )
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
