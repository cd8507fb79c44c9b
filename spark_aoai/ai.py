"""AI task helpers: each returns a configured pyspark.ml Transformer (Pipelines, save/load, ``df.transform``).

>>> from spark_aoai import ai
>>> labelled = ai.classify("text", labels=["bug", "feature", "question"], outputCol="label")
>>> df.transform(labelled.transform)  # doctest: +SKIP
>>> ai.extract("text", fields=["name", "city"]).transform(df)  # struct<name:string, city:string>  # doctest: +SKIP

Every helper takes the keyword arguments of ``ChatCompletion`` (``deploymentName``, ``endpoint``, credentials,
``concurrency``, ...) or, for ``embed`` and ``similarity``, of ``Embedding``, plus ``outputCol`` and ``errorCol``,
and adds exactly those two columns. A task is data (``TASKS``, ``Task``): its instructions, output schema
and defaults; the stages below only declare the task's own settings as Params. ``register(spark, ...)`` makes
the same helpers SQL functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame, SparkSession

from spark_aoai._planning.tasks import TASKS, Task
from spark_aoai._spark.semantic_agg import SemanticAgg
from spark_aoai._spark.semantic_join import SemanticJoin
from spark_aoai._spark.semantic_topk import SemanticTopK
from spark_aoai._spark.sql import TaskStages
from spark_aoai._spark.sql import register as _register
from spark_aoai._spark.task_stages import (
    AITask,
    Classify,
    Extract,
    Filter,
    FixGrammar,
    Sentiment,
    Similarity,
    Summarize,
    Translate,
    _semantic_stage,
)
from spark_aoai.exceptions import ConfigurationError
from spark_aoai.transformers import ChatCompletion, Embedding

if TYPE_CHECKING:
    pass

__all__ = [
    "TASKS",
    "AITask",
    "Classify",
    "Extract",
    "Filter",
    "FixGrammar",
    "SemanticAgg",
    "SemanticJoin",
    "SemanticTopK",
    "Sentiment",
    "Similarity",
    "Summarize",
    "Task",
    "Translate",
    "agg",
    "classify",
    "embed",
    "extract",
    "filter",
    "fix_grammar",
    "generate",
    "join",
    "register",
    "run",
    "sentiment",
    "similarity",
    "summarize",
    "top_k",
    "translate",
]

# -- the helpers --------------------------------------------------------------------------------------------


def generate(promptTemplate: str, **kwargs: Any) -> ChatCompletion:
    """A prompt template over columns, answered as text (or typed, with ``outputSchema``).

    >>> ai.generate("Write a tagline for {product}", outputCol="tagline")  # doctest: +SKIP
    """
    return ChatCompletion(promptTemplate=promptTemplate, **kwargs)


def classify(inputCol: str, labels: list[str], multiLabel: bool = False, **kwargs: Any) -> Classify:
    """Each row's text classified with one of ``labels`` (``multiLabel``: all that apply, an array)."""
    return Classify(promptCol=inputCol, labels=labels, multiLabel=multiLabel, **kwargs)


def extract(inputCol: str, fields: Any, **kwargs: Any) -> Extract:
    """``fields`` (names, a dict name -> description, or a StructType / DDL) extracted into a struct."""
    return Extract(promptCol=inputCol, fields=fields, **kwargs)


def sentiment(inputCol: str, **kwargs: Any) -> Sentiment:
    """positive / negative / neutral / mixed."""
    return Sentiment(promptCol=inputCol, **kwargs)


def summarize(inputCol: str, maxWords: int | None = None, **kwargs: Any) -> Summarize:
    """A summary of at most ``maxWords`` words (default 50)."""
    return Summarize(promptCol=inputCol, maxWords=maxWords, **kwargs)


def translate(inputCol: str, to: str, **kwargs: Any) -> Translate:
    """The text translated into ``to`` (a language name, e.g. ``"French"``)."""
    return Translate(promptCol=inputCol, to=to, **kwargs)


def fix_grammar(inputCol: str, **kwargs: Any) -> FixGrammar:
    """The text with its grammar and spelling corrected."""
    return FixGrammar(promptCol=inputCol, **kwargs)


def run(task: Task, inputCol: str, **kwargs: Any) -> AITask:
    """A user's own ``Task`` over a text column: its instructions as the system prompt, its output schema.

    >>> keywords = Task("keywords", "List the keywords of the user's text.", outputSchema="keywords array<string>")
    >>> ai.run(keywords, "text", outputCol="keywords")  # doctest: +SKIP
    """
    if not isinstance(task, Task):
        raise ConfigurationError(
            f"ai.run takes a Task, got {type(task).__name__}: ai.run(ai.Task(name, instructions, outputSchema=...), "
            "inputCol)"
        )
    if task.output is not None:
        raise ConfigurationError("ai.run takes a Task with a fixed outputSchema (or none), not an output builder")
    params = {"instructions": task.instructions, "outputSchema": task.outputSchema, **task.defaults, **kwargs}
    return AITask(promptCol=inputCol, **params)


def filter(inputCol: str, condition: str, **kwargs: Any) -> Filter:  # noqa: A001 (the issue's public name)
    """A boolean column (``keep``): whether ``inputCol`` satisfies ``condition`` (a template over columns).

    >>> df.transform(ai.filter("text", "asks for a refund").transform).where("keep")  # doctest: +SKIP
    """
    return Filter(inputCol=inputCol, condition=condition, **kwargs)


def join(left: DataFrame, right: DataFrame, condition: str, **kwargs: Any) -> DataFrame:
    """The pairs of rows for which ``condition`` (a template over ``{left.col}`` and ``{right.col}``) holds:
    every column of both sides plus ``errorCol``; ``k`` candidates per left row by embeddings
    (``embeddingDeploymentName``), or one request per left row when the right side is small
    (``maxListedRows``). ``out.statistics()`` (or ``ai.SemanticJoin``'s) says the plan and its counts.

    >>> ai.join(products, listings, "{left.title} and {right.title} are the same product",
    ...         embeddingDeploymentName="text-embedding-3-small", deploymentName="gpt-4o")  # doctest: +SKIP
    """
    joiner = SemanticJoin(condition, _semantic_stage, **kwargs)
    out = joiner.join(left, right)
    out.statistics = joiner.statistics  # type: ignore[attr-defined]
    return out


def agg(df: DataFrame, groupBy: str | list[str], inputCol: str, instruction: str, **kwargs: Any) -> DataFrame:
    """One answer per group (``outputCol``, default ``answer``; typed with ``outputSchema``), by hierarchical
    map-reduce for groups beyond a context window (``maxPromptTokens``, else the model's limit); ``depth`` and
    ``requests`` per group; ``out.statistics()`` the levels.

    >>> ai.agg(reviews, "product", "text", "List the main complaints", deploymentName="gpt-4o")  # doctest: +SKIP
    """
    aggregation = SemanticAgg(instruction, _semantic_stage, **kwargs)
    out = aggregation.aggregate(df, groupBy, inputCol)
    out.statistics = aggregation.statistics  # type: ignore[attr-defined]
    return out


def top_k(df: DataFrame, inputCol: str, k: int, criterion: str, **kwargs: Any) -> DataFrame:
    """The ``k`` rows that best satisfy ``criterion``, best first (``outputCol``, default ``rank``: 1..k): an
    embedding pre-filter (``embeddingDeploymentName``, ``candidates``) then list-wise ranking; ``out.statistics()``
    says how many requests it made.

    >>> ai.top_k(tickets, "text", 5, "most urgent outage", embeddingDeploymentName="text-embedding-3-small",
    ...          deploymentName="gpt-4o")  # doctest: +SKIP
    """
    ranker = SemanticTopK(criterion, k, _semantic_stage, **kwargs)
    out = ranker.top(df, inputCol)
    out.statistics = ranker.statistics  # type: ignore[attr-defined]
    return out


def embed(inputCol: str, **kwargs: Any) -> Embedding:
    """The ``Embedding`` stage over ``inputCol`` (same Params)."""
    return Embedding(inputCol=inputCol, **kwargs)


def similarity(leftCol: str, rightCol: str, **kwargs: Any) -> Similarity:
    """The cosine similarity (double) of the two columns' embeddings; takes ``Embedding``'s Params."""
    return Similarity(leftCol=leftCol, rightCol=rightCol, **kwargs)


def register(spark: SparkSession, embeddingDeploymentName: str | None = None, **kwargs: Any) -> list[str]:
    """Register ``ai_generate``, ``ai_classify``, ``ai_extract``, ``ai_sentiment``, ``ai_summarize``,
    ``ai_translate``, ``ai_embed``, ``ai_similarity`` and ``ai_filter_result`` on ``spark``; each returns
    ``struct<result, error>``; ``ai_filter(text, condition)`` is its boolean (null on error), for ``WHERE``.

    ``kwargs`` are ``ChatCompletion``'s connection and throughput keyword arguments (``deploymentName``,
    ``endpoint``, credentials, ...); ``embeddingDeploymentName`` is the deployment of ``ai_embed`` and
    ``ai_similarity`` (default: ``deploymentName``). Arguments in SQL: ``ai_generate(prompt)``,
    ``ai_classify(text, labels array<string>)``, ``ai_extract(text, fields array<string>)`` (result:
    ``map<string,string>``), ``ai_sentiment(text)``, ``ai_summarize(text)``, ``ai_translate(text, language)``,
    ``ai_embed(text)`` (result: ``array<float>``), ``ai_similarity(a, b)`` (result: ``double``).

    >>> ai.register(spark, deploymentName="gpt-4o", embeddingDeploymentName="text-embedding-3-small")  # doctest: +SKIP
    >>> spark.sql("SELECT ai_sentiment(text).sentiment FROM reviews")  # doctest: +SKIP
    """
    tasks = TaskStages(Classify, Extract, Sentiment, Summarize, Translate, Similarity, Filter)
    return _register(spark, tasks, embeddingDeploymentName, **kwargs)
