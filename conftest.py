"""Shared fixtures: one local Spark session for the whole run, and emulators on free ports."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

# Spark's Python workers must run this interpreter, or they cannot import spark_aoai and its dependencies.
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
for name in ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "OPENAI_API_VERSION"):
    os.environ.pop(name, None)


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("spark_aoai-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "10000")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def emulator() -> Iterator[object]:
    """A fresh emulator (thread in this process) for one test."""
    from spark_aoai.emulator import Emulator

    with Emulator() as emu:
        yield emu


@pytest.fixture(scope="session")
def shared_emulator() -> Iterator[object]:
    """One emulator for the read-only tests of a run; tests reset its settings and stats as they need."""
    from spark_aoai.emulator import Emulator

    with Emulator() as emu:
        yield emu
