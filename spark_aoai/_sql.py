"""The AI helpers as SQL functions: ``spark_aoai.ai.register(spark, ...)``.

Each is a pandas UDF registered with ``spark.udf.register`` (no SparkContext, no JVM: Spark Connect works)
and returns ``struct<result, error>``. Settings that SQL passes per row (``labels``, ``fields``, ``to``) are
the row's values: the instructions are rendered and the output schema built per row, on the executor.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pyspark.sql import SparkSession

from spark_aoai._executor import OutputColumn
from spark_aoai._operations import ChatOperation
from spark_aoai._similarity import PAIR_KEYS
from spark_aoai._stage import SECRET_ARGUMENTS, AzureOpenAIStage
from spark_aoai._tasks import TASKS, classify_for_row, extract_for_row, extract_map_output
from spark_aoai._template import Template
from spark_aoai.functions import plan_udf, stage_udf
from spark_aoai.transformers import ChatCompletion, Embedding

FUNCTIONS = (
    "ai_classify", "ai_embed", "ai_extract", "ai_generate", "ai_sentiment", "ai_similarity", "ai_summarize",
    "ai_translate",
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


def register(spark: SparkSession, embeddingDeploymentName: str | None = None, **kwargs: Any) -> list[str]:
    """Register ``ai_generate``, ``ai_classify``, ``ai_extract``, ``ai_sentiment``, ``ai_summarize``,
    ``ai_translate``, ``ai_embed`` and ``ai_similarity`` on ``spark``; each returns ``struct<result, error>``.

    ``kwargs`` are ``ChatCompletion``'s connection and throughput keyword arguments (``deploymentName``,
    ``endpoint``, credentials, ...); ``embeddingDeploymentName`` is the deployment of ``ai_embed`` and
    ``ai_similarity`` (default: ``deploymentName``). Arguments in SQL: ``ai_generate(prompt)``,
    ``ai_classify(text, labels array<string>)``, ``ai_extract(text, fields array<string>)`` (result:
    ``map<string,string>``), ``ai_sentiment(text)``, ``ai_summarize(text)``, ``ai_translate(text, language)``,
    ``ai_embed(text)`` (result: ``array<float>``), ``ai_similarity(a, b)`` (result: ``double``).

    >>> ai.register(spark, deploymentName="gpt-4o", embeddingDeploymentName="text-embedding-3-small")  # doctest: +SKIP
    >>> spark.sql("SELECT ai_sentiment(text).result FROM reviews")  # doctest: +SKIP
    """
    from spark_aoai.ai import Classify, Extract, Sentiment, Similarity, Summarize, Translate

    chat = {k: v for k, v in kwargs.items() if k not in EMBEDDING_ONLY} | {"outputCol": "result", "errorCol": "error"}
    embedding = {k: v for k, v in {**chat, **kwargs}.items() if k in SECRET_ARGUMENTS or Embedding().hasParam(k)}
    if embeddingDeploymentName:
        embedding["deploymentName"] = embeddingDeploymentName
    classify = Classify(labels=["placeholder"], **chat)
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
        "ai_similarity": stage_udf(Similarity(**embedding), PAIR_KEYS),
    }
    for name, function in functions.items():
        spark.udf.register(name, function)
    return sorted(functions)
