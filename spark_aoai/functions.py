"""Pandas-UDF flavour of the stages, for column expressions.

``chat_udf(...)`` and ``embedding_udf(...)`` take the same keyword arguments as ``ChatCompletion`` and
``Embedding`` (minus the input column) and return a UDF whose result is a struct with one field per output
column the stage would add, under the same names (``response``, ``error``, and ``usage`` / ``finish_reason``
when ``usageCol`` / ``finishReasonCol`` name them):

>>> ask = chat_udf(deploymentName="gpt-4o", endpoint="http://127.0.0.1:8765", usageCol="usage")
>>> df.select("id", ask("prompt").alias("out")).select("id", "out.response", "out.usage")  # doctest: +SKIP

With ``promptTemplate``, call the UDF on a struct of the columns the template names (their names are the
placeholders): ``ask(F.struct("title", "lang", "body"))``; a placeholder the struct lacks makes the row
``invalid_input``. With ``outputSchema`` the ``response`` field is the typed struct.

With ``imageCol`` / ``fileCol``, call it on a struct holding the text under ``prompt`` (or the ``promptCol`` /
``messagesCol`` name) and the media under those names:
``ask(F.struct(F.col("q").alias("prompt"), F.col("content").alias("image")))`` for ``imageCol="image"``.

They run the same partition engine: an iterator UDF keeps one pooled session and rate controller per task.
The UDFs are non-deterministic for Spark, so a filter on their result never calls the service twice per row.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pyarrow as pa
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import StructType

from spark_aoai._engine.plan import Plan
from spark_aoai._spark.stage import AzureOpenAIStage, output_fields
from spark_aoai.exceptions import ConfigurationError
from spark_aoai.transformers import ChatCompletion, Embedding


def stage_udf(stage: AzureOpenAIStage, names: tuple[str, ...] = ()) -> Any:
    """The pandas UDF that runs ``stage`` over its argument column(s) and returns its output columns as one
    struct. ``names``: the UDF takes that many columns, and a row's item is a dict of them under these names."""
    return plan_udf(stage._udf_plan(), f"{type(stage).__name__} UDF", names, stage._vector_output())


def plan_udf(plan: Plan, udf_name: str, names: tuple[str, ...] = (), vector: bool = False) -> Any:
    """The pandas UDF that runs ``plan`` (through ``Plan.run``, like every flavour): the UDFs and SQL functions."""
    out = plan.names
    maps = [c.name for c in plan.outputs if pa.types.is_map(c.field.arrow_type)]

    @pandas_udf(StructType(output_fields(plan, vector)))  # type: ignore[call-overload]
    def call(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:  # a tuple of them for several columns
        for results, _ in plan.run((_items(b, names, udf_name), None) for b in batches):
            frame = pa.Table.from_arrays(plan.encode(results), names=out).to_pandas()
            for column in maps:  # Arrow gives a map as key/value pairs; Spark takes a dict
                frame[column] = [None if v is None else dict(v) for v in frame[column]]
            if vector:
                from pyspark.ml.linalg import DenseVector

                frame[out[0]] = [None if v is None else DenseVector(v) for v in frame[out[0]]]
            yield frame

    return call.asNondeterministic()


def _items(values: Any, names: tuple[str, ...], udf_name: str) -> list[Any]:
    """A batch's items: a column's values; for a struct column (a template's fields) one dict per row; for
    several columns (``names``) one dict per row of them under those names."""
    if names:
        series = (values,) if isinstance(values, pd.Series) else tuple(values)
        return [dict(zip(names, row, strict=True)) for row in zip(*(s.tolist() for s in series), strict=True)]
    if isinstance(values, pd.DataFrame):
        return list(values.to_dict("records"))
    return list(_checked(values, udf_name).tolist())


def _checked(series: pd.Series, udf_name: str) -> pd.Series:
    """Refuse a column of numbers, booleans or timestamps: the first time Spark lets the UDF see its type."""
    from pandas.api import types

    if types.is_numeric_dtype(series) or types.is_bool_dtype(series) or types.is_datetime64_any_dtype(series):
        raise ConfigurationError(f"{udf_name}: its argument column is {series.dtype}, not a string column")
    return series


def chat_udf(**kwargs: Any) -> Any:
    """A UDF over a prompt (string) or messages (array of role/content structs) column.

    Returns ``struct<response: string, error: struct<status, code, message, attempts, request_id>>`` plus the
    optional ``usage`` and ``finish_reason`` fields when ``usageCol`` / ``finishReasonCol`` are named.
    """
    return stage_udf(ChatCompletion(**kwargs))


def embedding_udf(**kwargs: Any) -> Any:
    """A UDF over a text column returning ``struct<embedding: array<float> (or a Vector), error: struct<...>>``."""
    return stage_udf(Embedding(**kwargs))
