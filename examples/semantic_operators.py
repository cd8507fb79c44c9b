"""Semantic operators over support tickets: filter, join to a product catalogue, themes per product, top k.

    python examples/semantic_operators.py

Runs against Azure when AZURE_OPENAI_ENDPOINT is set (deployments CHAT_DEPLOYMENT, default gpt-4o, and
EMBEDDING_DEPLOYMENT, default text-embedding-3-small), else against the bundled emulator.
"""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import azure_or_emulator, local_spark
from pyspark.sql import SparkSession

from spark_aoai import ai

TICKETS = [
    (1, "My Acme kettle leaks from the base, I want a refund."),
    (2, "The Zephyr fan is noisy at night but works."),
    (3, "Acme kettle stopped heating after a week, refund please."),
    (4, "Urgent: the Volt charger sparked and smells of smoke, a safety hazard."),
    (5, "Love the Zephyr fan, quiet and strong."),
    (6, "Volt charger is slow to charge my phone."),
    (7, "The kettle lid from Acme broke; refund or replacement?"),
    (8, "Urgent safety hazard: Volt charger cable melted."),
]
PRODUCTS = [(10, "Acme kettle"), (20, "Zephyr fan"), (30, "Volt charger")]


def run(spark: SparkSession, endpoint: str | None) -> dict[str, Any]:
    """The four operators on the tickets; their results and what each cost."""
    chat = {"deploymentName": os.environ.get("CHAT_DEPLOYMENT", "gpt-4o"), "endpoint": endpoint}
    embeddings = os.environ.get("EMBEDDING_DEPLOYMENT", "text-embedding-3-small")
    tickets = spark.createDataFrame(TICKETS, "ticket_id int, text string")
    products = spark.createDataFrame(PRODUCTS, "product_id int, name string")

    refunds = tickets.transform(ai.filter("text", "asks for a refund", **chat).transform).where("keep")
    joined = ai.join(tickets, products, "{left.text} is about the product {right.name}", **chat)
    themes = ai.agg(joined, "name", "text", "List the main themes of these tickets", **chat)
    urgent = ai.top_k(tickets, "text", 2, "urgent safety hazard", embeddingDeploymentName=embeddings, **chat)
    return {
        "refunds": refunds.orderBy("ticket_id").collect(),
        "joined": joined.orderBy("ticket_id").collect(),
        "join_statistics": joined.statistics(),
        "themes": themes.orderBy("name").collect(),
        "urgent": urgent.collect(),
        "top_k_statistics": urgent.statistics(),
    }


def main() -> None:
    spark = local_spark("spark_aoai-semantic-operators")
    with azure_or_emulator() as endpoint:
        out = run(spark, endpoint)
        print("Tickets asking for a refund:")
        for row in out["refunds"]:
            print(f"  #{row.ticket_id} {row.text}")
        stats = out["join_statistics"]
        print(f"Tickets joined to products ({stats['plan']} plan, {stats['chat_requests']} requests, "
              f"{stats['pair_checks']} pairs decided of {stats['naive_pair_checks']}):")  # fmt: skip
        for row in out["joined"]:
            print(f"  #{row.ticket_id} -> {row.name}")
        print("Themes per product:")
        for row in out["themes"]:
            print(f"  {row.name}: {row.answer} ({row.requests} request(s), depth {row.depth})")
        print(f"Most urgent ({out['top_k_statistics']['requests']} ranking request(s)):")
        for row in out["urgent"]:
            print(f"  {row['rank']}. #{row.ticket_id} {row.text}")
    spark.stop()


if __name__ == "__main__":
    main()
