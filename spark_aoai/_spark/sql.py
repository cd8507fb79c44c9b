"""The AI helpers as SQL functions: ``spark_aoai.ai.register(spark, ...)``.

Each is a pandas UDF registered with ``spark.udf.register`` under a private name, wrapped in a temporary SQL
function with typed parameters (``SIGNATURES``), so Spark refuses a wrong argument count or type when it
analyses the query (no SparkContext, no JVM: Spark Connect works); each returns a struct named as its stage's
columns (``ai_classify(...)`` gives ``struct<label, error>``, as ``ai.classify``'s Transformer adds ``label`` and
``error`` and its UDF returns ``struct<label, error>``).
Settings that SQL passes per row (``labels``, ``fields``, ``to``) are
the row's values: the instructions are rendered and the output schema built per row, on the executor.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession

from spark_aoai._engine.plan import OutputColumn
from spark_aoai._planning.operations import ChatOperation
from spark_aoai._planning.tasks import TASKS, classify_for_row, extract_for_row, extract_map_output
from spark_aoai._planning.template import Template
from spark_aoai._spark.similarity import PAIR_KEYS
from spark_aoai._spark.stage import SECRET_ARGUMENTS, AzureOpenAIStage
from spark_aoai.exceptions import ConfigurationError
from spark_aoai.functions import plan_udf, stage_udf
from spark_aoai.transformers import ChatCompletion, Embedding

FUNCTIONS = (
    "ai_classify", "ai_embed", "ai_extract", "ai_generate", "ai_sentiment", "ai_similarity", "ai_summarize",
    "ai_translate", "ai_filter", "ai_filter_result",
)  # fmt: skip
EMBEDDING_ONLY = ("dimensions", "batchSize", "maxBatchTokens")


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
    per_row = dataclasses.replace(plan, operation=operation, outputs=outputs)  # dedup, hooks: the stage's
    return plan_udf(per_row, f"{type(stage).__name__} UDF", names)


@dataclass(frozen=True)
class TaskStages:
    """The task stages the SQL functions are made of; ``ai`` defines them and hands them in."""

    classify: type[Any]
    extract: type[Any]
    sentiment: type[Any]
    summarize: type[Any]
    translate: type[Any]
    similarity: type[Any]
    filter: type[Any]


def register(
    spark: SparkSession, tasks: TaskStages, embeddingDeploymentName: str | None = None, **kwargs: Any
) -> list[str]:
    """``ai.register``: make each SQL function from its stage (its plan run through ``Plan.run``) and register it
    on ``spark`` as a SQL function with typed parameters (``SIGNATURES``); the names, sorted."""
    named = sorted(set(kwargs) & {"outputCol", "errorCol"})
    if named:
        raise ConfigurationError(
            f"ai.register: {', '.join(named)} cannot be set: each SQL function returns a struct named as its stage's "
            "columns (ai_classify(...).label, ai_generate(...).response, ..., and .error)"
        )
    chat = {k: v for k, v in kwargs.items() if k not in EMBEDDING_ONLY}
    embedding = {k: v for k, v in {**chat, **kwargs}.items() if k in SECRET_ARGUMENTS or Embedding().hasParam(k)}
    if embeddingDeploymentName:
        embedding["deploymentName"] = embeddingDeploymentName
    classify = tasks.classify(labels=["placeholder", "another"], **chat)
    extract = tasks.extract(fields=["placeholder"], **chat)
    functions = {
        "ai_generate": stage_udf(ChatCompletion(**chat)),
        "ai_sentiment": stage_udf(tasks.sentiment(**chat)),
        "ai_summarize": stage_udf(tasks.summarize(**chat)),
        "ai_translate": _per_row(tasks.translate(to="x", **chat), ("text", "to"), TASKS["translate"].instructions),
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
        "ai_similarity": stage_udf(tasks.similarity(**embedding), PAIR_KEYS),
        "ai_filter_result": stage_udf(tasks.filter(inputCol="text", condition="{condition}", **chat), FILTER_KEYS),
    }
    for name, function in functions.items():
        _declare(spark, name, function)
    _declare_filter(spark, functions["ai_filter_result"])
    return sorted([*functions, "ai_filter"])


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
    "ai_filter_result": "text STRING, condition STRING",
}
FILTER_KEYS = ("text", "condition")


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


def _declare_filter(spark: SparkSession, function: Any) -> None:
    """``ai_filter(text, condition)``: the boolean of ``ai_filter_result`` (null on error), for ``WHERE``.
    Spark before 4.0 has no SQL functions: there ``ai_filter`` is ``ai_filter_result`` (use its ``.keep``)."""
    spark.sql("DROP TEMPORARY FUNCTION IF EXISTS ai_filter")
    try:
        spark.sql(
            "CREATE TEMPORARY FUNCTION ai_filter(text STRING, condition STRING) RETURNS BOOLEAN "
            "RETURN _spark_aoai_ai_filter_result(text, condition).keep"
        )
    except Exception:  # ParseException: no SQL functions before Spark 4.0
        spark.udf.register("ai_filter", function)
