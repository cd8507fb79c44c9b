"""Embeddings feeding a similarity search and an MLlib pipeline.

    python examples/embeddings_similarity.py

1. Embed a small document table, embed a query, rank documents by cosine similarity (vectors are unit length,
   so the dot product is the cosine).
2. The same stage with outputType="vector" inside a pyspark.ml Pipeline that clusters the documents with KMeans.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import azure_or_emulator, local_spark
from pyspark.ml import Pipeline
from pyspark.ml.clustering import KMeans
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_aoai import Embedding

DEPLOYMENT = os.environ.get("AZURE_OPENAI_EMBEDDING_DEPLOYMENT", "text-embedding-3-small")
DOCUMENTS = [
    "How to reset a forgotten account password",
    "Changing your password and security questions",
    "Quarterly revenue grew eight percent in Europe",
    "Revenue and profit figures for the third quarter",
    "Setting up two-factor authentication on your account",
    "Annual report: revenue by region",
]


def search(spark: SparkSession, endpoint: str | None, query: str, top: int = 3) -> DataFrame:
    docs = spark.createDataFrame(list(enumerate(DOCUMENTS)), "doc_id int, text string")
    embed = Embedding(deploymentName=DEPLOYMENT, inputCol="text", outputCol="embedding", endpoint=endpoint)
    doc_vectors = embed.transform(docs).where("error is null")
    query_vector = embed.transform(spark.createDataFrame([(query,)], "text string")).first()
    if query_vector is None or query_vector.error is not None:
        raise RuntimeError(f"the query could not be embedded: {query_vector.error if query_vector else None}")
    q = F.array(*[F.lit(float(v)) for v in query_vector.embedding])
    cosine = F.aggregate(F.zip_with("embedding", q, lambda a, b: a * b), F.lit(0.0), lambda acc, x: acc + x)
    return doc_vectors.select("doc_id", "text", cosine.alias("similarity")).orderBy(F.desc("similarity")).limit(top)


def cluster(spark: SparkSession, endpoint: str | None, k: int = 2) -> DataFrame:
    docs = spark.createDataFrame(list(enumerate(DOCUMENTS)), "doc_id int, text string")
    pipeline = Pipeline(
        stages=[
            Embedding(
                deploymentName=DEPLOYMENT, inputCol="text", outputCol="features", outputType="vector", endpoint=endpoint
            ),
            KMeans(k=k, seed=42, featuresCol="features", predictionCol="cluster"),
        ]
    )
    return pipeline.fit(docs).transform(docs).select("doc_id", "text", "cluster")


def main() -> int:
    spark = local_spark("spark_aoai embeddings similarity")
    with azure_or_emulator() as endpoint:
        query = "I forgot my password"
        print(f"Documents most similar to {query!r}:")
        best = search(spark, endpoint, query)
        best.show(truncate=60)
        print("KMeans clusters over embedding vectors:")
        cluster(spark, endpoint).orderBy("cluster", "doc_id").show(truncate=60)
        top_text = best.first()
    spark.stop()
    return 0 if top_text is not None and "password" in top_text.text.lower() else 1


if __name__ == "__main__":
    sys.exit(main())
