"""Chat over a table: classify product reviews with structured output, keep errors, count tokens.

    python examples/chat_over_table.py

Runs against Azure when AZURE_OPENAI_ENDPOINT is set, else against the bundled emulator.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import azure_or_emulator, local_spark
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_aoai import ChatCompletion

REVIEW_SCHEMA = {
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
        "summary": {"type": "string"},
    },
    "required": ["sentiment", "summary"],
    "additionalProperties": False,
}
REVIEWS = [
    "The blender is powerful and easy to clean. Love it!",
    "Arrived broken, and support never answered my emails.",
    "It does the job. Nothing special.",
    "Battery lasts two days, screen is gorgeous.",
    None,  # a null review becomes an error row, not a crash
]


def classify_reviews(spark: SparkSession, endpoint: str | None) -> DataFrame:
    reviews = spark.createDataFrame(list(enumerate(REVIEWS)), "review_id int, review string")
    classify = ChatCompletion(
        deploymentName=os.environ.get("AZURE_OPENAI_CHAT_DEPLOYMENT", "gpt-4.1"),
        promptCol="review",
        systemPrompt="Classify the customer review's sentiment and summarise it in five words.",
        responseFormat={
            "type": "json_schema",
            "json_schema": {"name": "review", "schema": REVIEW_SCHEMA, "strict": True},
        },
        temperature=0.0,
        outputCol="answer",
        errorCol="error",
        usageCol="usage",
        endpoint=endpoint,
    )
    parsed = F.from_json("answer", "sentiment string, summary string")
    return classify.transform(reviews).withColumn("label", parsed)


def main() -> int:
    spark = local_spark("spark_aoai chat over a table")
    with azure_or_emulator() as endpoint:
        result = classify_reviews(spark, endpoint).cache()
        result.select("review_id", "label.sentiment", "label.summary", "error.code").orderBy("review_id").show(
            truncate=50
        )
        result.agg(
            F.count("*").alias("rows"),
            F.count("answer").alias("answered"),
            F.count("error").alias("errors"),
            F.sum("usage.total_tokens").alias("total_tokens"),
        ).show()
        rows = result.count()
    spark.stop()
    return 0 if rows == len(REVIEWS) else 1


if __name__ == "__main__":
    sys.exit(main())
