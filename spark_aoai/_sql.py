"""The AI helpers as SQL functions: ``spark_aoai.ai.register(spark, ...)``.

Each is a pandas UDF registered with ``spark.udf.register`` (no SparkContext, no JVM: Spark Connect works)
and returns ``struct<result, error>``. Settings that SQL passes per row (``labels``, ``fields``, ``to``) are
the row's values: the instructions are rendered and the output schema built per row, on the executor.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
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


@dataclass(frozen=True)
class TaskStages:
    """The task stages the SQL functions are made of; ``ai`` defines them and hands them in."""

    classify: type[Any]
    extract: type[Any]
    sentiment: type[Any]
    summarize: type[Any]
    translate: type[Any]
    similarity: type[Any]


def register(
    spark: SparkSession, tasks: TaskStages, embeddingDeploymentName: str | None = None, **kwargs: Any
) -> list[str]:
    """``ai.register``: make each SQL function from its stage (its plan run through ``Plan.run``) and register it
    on ``spark``; the names, sorted."""
    chat = {k: v for k, v in kwargs.items() if k not in EMBEDDING_ONLY} | {"outputCol": "result", "errorCol": "error"}
    embedding = {k: v for k, v in {**chat, **kwargs}.items() if k in SECRET_ARGUMENTS or Embedding().hasParam(k)}
    if embeddingDeploymentName:
        embedding["deploymentName"] = embeddingDeploymentName
    classify = tasks.classify(labels=["placeholder"], **chat)
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
    }
    for name, function in functions.items():
        spark.udf.register(name, function)
    return sorted(functions)
