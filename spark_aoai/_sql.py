"""The AI helpers as SQL functions: ``spark_aoai.ai.register(spark, ...)``.

Each is a pandas UDF registered with ``spark.udf.register`` (no SparkContext, no JVM: Spark Connect works)
and returns ``struct<result, error>``. Settings that SQL passes per row (``labels``, ``fields``, ``to``) are
the row's values: the instructions are rendered and the output schema built per row, on the executor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pyarrow as pa
from pyspark.sql import SparkSession
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import DoubleType, StructField, StructType

from spark_aoai._contract import ROW_ERROR_ARROW_TYPE
from spark_aoai._engine import open_hooks
from spark_aoai._executor import OutputColumn, Plan
from spark_aoai._operations import ChatOperation
from spark_aoai._partition import run_partition
from spark_aoai._similarity import pairs
from spark_aoai._spark_types import spark_type
from spark_aoai._stage import SECRET_ARGUMENTS, AzureOpenAIStage
from spark_aoai._tasks import TASKS, classify_for_row, extract_for_row, extract_map_output
from spark_aoai._template import Template

FUNCTIONS = (
    "ai_classify", "ai_embed", "ai_extract", "ai_generate", "ai_sentiment", "ai_similarity", "ai_summarize",
    "ai_translate",
)  # fmt: skip
EMBEDDING_ONLY = ("dimensions", "batchSize", "maxBatchTokens")


def _result_type(plan: Plan) -> StructType:
    return StructType([StructField(c.name, spark_type(c.field.arrow_type)) for c in plan.outputs])


def _rows_udf(plan: Plan, names: tuple[str, ...]) -> Any:
    """A pandas UDF over ``len(names)`` columns whose items are dicts ``{name: value}`` (a template's rows)."""

    maps = [c.name for c in plan.outputs if pa.types.is_map(c.field.arrow_type)]

    @pandas_udf(_result_type(plan))  # type: ignore[call-overload]
    def call(batches: Iterator[tuple[pd.Series, ...]]) -> Iterator[pd.DataFrame]:
        def items(columns: Any) -> list[dict[str, Any]]:
            series = (columns,) if isinstance(columns, pd.Series) else tuple(columns)
            return [dict(zip(names, values, strict=True)) for values in zip(*(s.tolist() for s in series), strict=True)]

        work = ((items(b), None) for b in batches)
        for results, _ in run_partition(work, plan.operation, plan.config, open_hooks(plan.hooks)):
            frame = pa.Table.from_arrays(plan.encode(results), names=plan.names).to_pandas()
            for column in maps:  # Arrow gives a map as key/value pairs; Spark takes a dict
                frame[column] = [None if v is None else dict(v) for v in frame[column]]
            yield frame

    return call.asNondeterministic()


def _per_row(stage: AzureOpenAIStage, names: tuple[str, ...], system: str, **changes: Any) -> Any:
    """``stage``'s plan with its prompt the row's ``text`` and its instructions rendered from the row."""
    plan = stage._udf_plan()
    operation = dataclasses.replace(
        plan.operation,  # type: ignore[type-var]
        template=Template.parse("{text}"),
        system_template=Template.parse(system, "instructions"),
        system_prompt=None,
        **changes,
    )
    assert isinstance(operation, ChatOperation)
    declared = {f.param: f for f in operation.outputs}  # the output type may have changed (a map)
    outputs = tuple(OutputColumn(declared[c.field.param], c.name) for c in plan.outputs)
    return _rows_udf(Plan(plan.config, operation, outputs, plan.hooks), names)


def _similarity_udf(stage: AzureOpenAIStage) -> Any:
    plan = stage._udf_plan()
    result = StructType([StructField("result", DoubleType()), StructField("error", spark_type(ROW_ERROR_ARROW_TYPE))])

    @pandas_udf(result)  # type: ignore[call-overload]
    def call(batches: Iterator[tuple[pd.Series, pd.Series]]) -> Iterator[pd.DataFrame]:
        work = ((left.tolist(), right.tolist(), None) for left, right in batches)
        for columns, _ in pairs(work, plan):
            yield pa.Table.from_arrays(columns, names=["result", "error"]).to_pandas()

    return call.asNondeterministic()


def register(spark: SparkSession, embeddingDeploymentName: str | None = None, **kwargs: Any) -> list[str]:
    """Register ``ai_generate``, ``ai_classify``, ``ai_extract``, ``ai_sentiment``, ``ai_summarize``,
    ``ai_translate``, ``ai_embed`` and ``ai_similarity`` on ``spark``; each returns ``struct<result, error>``.

    ``kwargs`` are ``ChatCompletion``'s connection and throughput keyword arguments (``deploymentName``,
    ``endpoint``, credentials, ...); ``embeddingDeploymentName`` is the deployment of ``ai_embed`` and
    ``ai_similarity`` (default: ``deploymentName``). Arguments in SQL: ``ai_generate(prompt)``,
    ``ai_classify(text, labels array<string>)``, ``ai_extract(text, fields array<string>)`` (result:
    ``map<string,string>``), ``ai_sentiment(text)``, ``ai_summarize(text)``, ``ai_translate(text, language)``,
    ``ai_embed(text)`` (result: ``array<float>``), ``ai_similarity(a, b)`` (result: ``double``). Each is a SQL
    function with these typed parameters, so a wrong argument count or type fails when the query is analysed.

    >>> ai.register(spark, deploymentName="gpt-4o", embeddingDeploymentName="text-embedding-3-small")  # doctest: +SKIP
    >>> spark.sql("SELECT ai_sentiment(text).result FROM reviews")  # doctest: +SKIP
    """
    from spark_aoai.ai import Classify, Extract, Sentiment, Summarize, Translate
    from spark_aoai.functions import stage_udf
    from spark_aoai.transformers import ChatCompletion, Embedding

    chat = {k: v for k, v in kwargs.items() if k not in EMBEDDING_ONLY} | {"outputCol": "result", "errorCol": "error"}
    embedding = {k: v for k, v in {**chat, **kwargs}.items() if k in SECRET_ARGUMENTS or Embedding().hasParam(k)}
    if embeddingDeploymentName:
        embedding["deploymentName"] = embeddingDeploymentName
    classify = Classify(labels=["placeholder", "another"], **chat)
    extract = Extract(fields=["placeholder"], **chat)
    functions = {
        "ai_generate": stage_udf(ChatCompletion(**chat)),
        "ai_sentiment": stage_udf(Sentiment(**chat)),
        "ai_summarize": stage_udf(Summarize(**chat)),
        "ai_translate": _per_row(Translate(to="x", **chat), ("text", "to"), TASKS["translate"].instructions),
        "ai_classify": _per_row(
            classify, ("text", "labels"), TASKS["classify"].instructions, output_for=classify_for_row
        ),
        "ai_extract": _per_row(
            extract,
            ("text", "fields"),
            TASKS["extract"].instructions,
            output_for=extract_for_row,
            structured=extract_map_output({"fields": ["placeholder"]}),
        ),
        "ai_embed": stage_udf(Embedding(**embedding)),
        "ai_similarity": _similarity_udf(Embedding(**embedding)),
    }
    for name, function in functions.items():
        _declare(spark, name, function)
    return sorted(functions)


# Each function's parameters: Spark checks a call's argument count and types against them when it analyses
# the query, naming the function (``ai_classify(text, 'bug')`` cannot cast STRING to ARRAY<STRING>).
SIGNATURES = {
    "ai_classify": "text STRING, labels ARRAY<STRING>",
    "ai_embed": "text STRING",
    "ai_extract": "text STRING, fields ARRAY<STRING>",
    "ai_generate": "prompt STRING",
    "ai_sentiment": "text STRING",
    "ai_similarity": "a STRING, b STRING",
    "ai_summarize": "text STRING",
    "ai_translate": "text STRING, language STRING",
}


def _declare(spark: SparkSession, name: str, function: Any) -> None:
    """``name`` as a SQL function with typed parameters over the pandas UDF (registered as ``_spark_aoai_<name>``).
    Where Spark has no SQL functions (before 4.0) or cannot name the result type, the UDF itself is ``name``."""
    inner, parameters = f"_spark_aoai_{name}", SIGNATURES[name]
    arguments = ", ".join(p.split()[0] for p in parameters.split(", "))
    spark.udf.register(inner, function)
    spark.sql(f"DROP TEMPORARY FUNCTION IF EXISTS {name}")  # a SQL function cannot replace a Python one
    try:
        spark.sql(
            f"CREATE TEMPORARY FUNCTION {name}({parameters}) RETURNS {function.returnType.simpleString()} "
            f"RETURN {inner}({arguments})"
        )
    except Exception:  # ParseException, or a result type without a DDL name (a Vector)
        spark.udf.register(name, function)
