"""AI functions over a support-ticket table: classify, extract, sentiment, summarize and similarity, typed.

    python examples/ai_functions.py

Runs against Azure when AZURE_OPENAI_ENDPOINT is set (deployments CHAT_DEPLOYMENT, default gpt-4o, and
EMBEDDING_DEPLOYMENT, default text-embedding-3-small), else against the bundled emulator.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import azure_or_emulator, local_spark
from pyspark.ml import Pipeline
from pyspark.sql import DataFrame, SparkSession

from spark_aoai import ai

TICKETS = [
    (1, "The app crashes every time I upload a photo from my Pixel 8.", "upload crash"),
    (2, "Could you add a dark mode? My eyes hurt at night.", "feature request"),
    (3, "How do I export my invoices to CSV for 2024?", "export data"),
    (4, "I was charged twice on March 3, 2024 for order #4411. Please refund!", "billing problem"),
]


def triage(spark: SparkSession, endpoint: str | None) -> DataFrame:
    """Each ticket's category, its fields, sentiment, a short summary and how close it is to its title."""
    chat = {"deploymentName": os.environ.get("CHAT_DEPLOYMENT", "gpt-4o"), "endpoint": endpoint}
    embeddings = {**chat, "deploymentName": os.environ.get("EMBEDDING_DEPLOYMENT", "text-embedding-3-small")}
    tickets = spark.createDataFrame(TICKETS, "ticket_id int, text string, title string")
    pipeline = Pipeline(
        stages=[
            ai.classify("text", labels=["bug", "feature", "question", "billing"], outputCol="category",
                        errorCol="category_error", **chat),
            ai.extract("text", fields="product_area string, order_id int, charged_on date", outputCol="fields",
                       errorCol="fields_error", **chat),
            ai.sentiment("text", outputCol="sentiment", errorCol="sentiment_error", **chat),
            ai.summarize("text", maxWords=12, outputCol="summary", errorCol="summary_error", **chat),
            ai.similarity("text", "title", outputCol="title_match", errorCol="match_error", **embeddings),
        ]
    )  # fmt: skip
    return pipeline.fit(tickets).transform(tickets)


def main() -> None:
    spark = local_spark("spark_aoai-ai-functions")
    with azure_or_emulator() as endpoint:
        result = triage(spark, endpoint).orderBy("ticket_id")
        result.select("ticket_id", "category", "fields", "sentiment", "summary", "title_match").printSchema()
        for row in result.collect():
            print(
                f"#{row.ticket_id} {row.category} | {row.sentiment} | area={row.fields.product_area!r} "
                f"order={row.fields.order_id} charged_on={row.fields.charged_on} | match={row.title_match:.3f} "
                f"| {row.summary}"
            )
    spark.stop()


if __name__ == "__main__":
    main()
