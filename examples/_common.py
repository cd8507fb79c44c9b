"""Shared by the examples: a local Spark session and 'Azure when configured, else the emulator'."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def local_spark(app: str):  # type: ignore[no-untyped-def]
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master(os.environ.get("SPARK_MASTER", "local[2]"))
        .appName(app)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


@contextlib.contextmanager
def azure_or_emulator(extra_deployments: dict[str, str] | None = None) -> Iterator[str | None]:
    """Yield the endpoint: None means the environment's (AZURE_OPENAI_ENDPOINT or Fabric), else the emulator's.

    The emulator serves the deployments named after a model (``gpt-4o``) and ``extra_deployments`` (name -> model).
    """
    if os.environ.get("AZURE_OPENAI_ENDPOINT"):
        print(f"Using Azure OpenAI at {os.environ['AZURE_OPENAI_ENDPOINT']}")
        yield None
        return
    from spark_aoai.emulator import Emulator

    with Emulator(extra_deployments=extra_deployments) as emulator:
        print(f"AZURE_OPENAI_ENDPOINT is not set: using the spark_aoai emulator at {emulator.endpoint}")
        yield emulator.endpoint
