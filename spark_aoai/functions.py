"""Pandas-UDF flavour of the transformers, for column expressions.

``chat_udf(...)`` and ``embedding_udf(...)`` take the same keyword arguments as ``ChatCompletion`` and
``Embedding`` (minus the column names) and return a UDF whose result is a struct of the answer and the error:

>>> ask = chat_udf(deploymentName="gpt-4o", endpoint="http://127.0.0.1:8765")
>>> df.select("id", ask("prompt").alias("out")).select("id", "out.response", "out.error")  # doctest: +SKIP

They run the same partition engine: an iterator UDF keeps one pooled session and rate controller per task.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import StringType, StructField, StructType

from spark_aoai._partition import run_partition
from spark_aoai._schema import EMBEDDING_TYPE, ERROR_TYPE
from spark_aoai.transformers import ChatCompletion, Embedding, _AzureOpenAITransformer


def _make_udf(stage: _AzureOpenAITransformer, value_field: str, value_type: Any) -> Any:
    config = stage._client_config(SparkSession.getActiveSession())
    operation = stage._operation(config)
    return_type = StructType([StructField(value_field, value_type), StructField("error", ERROR_TYPE)])

    @pandas_udf(return_type)  # type: ignore[call-overload]
    def call(series: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        work = ((s.tolist(), None) for s in series)
        for results, _ in run_partition(work, operation, config):
            yield pd.DataFrame({value_field: results.values, "error": results.errors})

    return call


def chat_udf(**kwargs: Any) -> Any:
    """A UDF over a prompt (string) or messages (array of role/content structs) column.

    Returns ``struct<response: string, error: struct<status, code, message, attempts, request_id>>``.
    """
    stage = ChatCompletion(**kwargs)
    return _make_udf(stage, "response", StringType())


def embedding_udf(**kwargs: Any) -> Any:
    """A UDF over a text column returning ``struct<embedding: array<float>, error: struct<...>>``."""
    stage = Embedding(**kwargs)
    return _make_udf(stage, "embedding", EMBEDDING_TYPE)
