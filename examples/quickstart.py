"""Quick start: a chat question and an embeddings call over small DataFrames with spark_aoai.

This is the Fabric "Azure OpenAI with the REST API" walkthrough, done over DataFrames: the same question and
the same console layout, but every row of the DataFrame is sent, retried and accounted for by spark_aoai.

With AZURE_OPENAI_ENDPOINT set (plus AZURE_OPENAI_API_KEY, or nothing inside Fabric), it calls Azure OpenAI;
otherwise it starts the bundled emulator on a free port and calls that. Deployment names come from
AZURE_OPENAI_CHAT_DEPLOYMENT (default gpt-4.1) and AZURE_OPENAI_EMBEDDING_DEPLOYMENT (text-embedding-ada-002).

    python examples/quickstart.py
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import azure_or_emulator, local_spark

from spark_aoai import ChatCompletion, Embedding

CHAT_DEPLOYMENT = os.environ.get("AZURE_OPENAI_CHAT_DEPLOYMENT", "gpt-4.1")
EMBEDDING_DEPLOYMENT = os.environ.get("AZURE_OPENAI_EMBEDDING_DEPLOYMENT", "text-embedding-ada-002")
SYSTEM_PROMPT = "You are an AI assistant that helps people find information."
LINE = "=" * 90
RULE = "-" * 90


def print_chat_rows(rows: list) -> None:
    for row in rows:
        print(LINE)
        print("| OpenAI Input    |")
        print("[System]", SYSTEM_PROMPT)
        print("Q:", row.prompt)
        print(RULE)
        print("| Response Status |", 200 if row.error is None else (row.error.status or "not sent"))
        print(RULE)
        print("| OpenAI Output   |")
        print(row.response if row.error is None else f"{row.error.code}: {row.error.message}")
    print(LINE)


def print_embedding_rows(rows: list) -> None:
    for row in rows:
        print(LINE)
        print("| OpenAI Input    |")
        print(row.text)
        print(RULE)
        print("| Response Status |", 200 if row.error is None else (row.error.status or "not sent"))
        print(RULE)
        print("| OpenAI Output   |")
        if row.error is None:
            vector = row.embedding
            print(f"[{', '.join(f'{v:.6f}' for v in vector[:4])}, ...] ({len(vector)} dimensions)")
        else:
            print(f"{row.error.code}: {row.error.message}")
    print(LINE)


def main() -> int:
    spark = local_spark("spark_aoai quickstart")
    with azure_or_emulator() as endpoint:
        questions = spark.createDataFrame(
            [
                (1, "Does Azure OpenAI support customer managed keys?"),
                (2, "What is Microsoft Fabric?"),
                (3, None),
            ],
            "id int, prompt string",
        )
        chat = ChatCompletion(
            deploymentName=CHAT_DEPLOYMENT,
            promptCol="prompt",
            systemPrompt=SYSTEM_PROMPT,
            outputCol="response",
            errorCol="error",
            endpoint=endpoint,
        )
        answers = chat.transform(questions).orderBy("id").collect()
        print_chat_rows(answers)

        texts = spark.createDataFrame(
            [(1, "Azure OpenAI embeddings over Spark DataFrames"), (2, "A Lakehouse table of product reviews")],
            "id int, text string",
        )
        embedding = Embedding(
            deploymentName=EMBEDDING_DEPLOYMENT, inputCol="text", outputCol="embedding", endpoint=endpoint
        )
        vectors = embedding.transform(texts).orderBy("id").collect()
        print_embedding_rows(vectors)

    failed = sum(1 for row in answers + vectors if row.error is not None)
    print(
        f"{len(answers)} chat rows and {len(vectors)} embedding rows; {failed} with an error value "
        "(row 3 has a null prompt on purpose)."
    )
    spark.stop()
    return 0 if failed == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
