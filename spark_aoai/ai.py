"""AI task helpers: each returns a configured pyspark.ml Transformer (Pipelines, save/load, ``df.transform``).

>>> from spark_aoai import ai
>>> labelled = ai.classify("text", labels=["bug", "feature", "question"], outputCol="label")
>>> df.transform(labelled.transform)  # doctest: +SKIP
>>> ai.extract("text", fields=["name", "city"]).transform(df)  # struct<name:string, city:string>  # doctest: +SKIP

Every helper takes the keyword arguments of ``ChatCompletion`` (``deploymentName``, ``endpoint``, credentials,
``concurrency``, ...) or, for ``embed`` and ``similarity``, of ``Embedding``, plus ``outputCol`` and ``errorCol``,
and adds exactly those two columns. A task is data (``spark_aoai._tasks``): its instructions, output schema
and defaults; the stages below only declare the task's own settings as Params. ``register(spark, ...)`` makes
the same helpers SQL functions.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from spark_aoai._config import ClientConfig
from spark_aoai._contract import InvalidInputError, Operation
from spark_aoai._executor import Inputs
from spark_aoai._semantic import (
    LISTING_INSTRUCTIONS,
    RANKING_INSTRUCTIONS,
    filter_template,
    matches_output,
    ranking_output,
)
from spark_aoai._semantic_agg import SemanticAgg
from spark_aoai._semantic_join import SemanticJoin
from spark_aoai._semantic_topk import SemanticTopK
from spark_aoai._similarity import OUTPUTS as SIMILARITY_OUTPUTS
from spark_aoai._similarity import PAIR_KEYS, Pairs
from spark_aoai._spark_types import require_column, require_string
from spark_aoai._sql import TaskStages
from spark_aoai._sql import register as _register
from spark_aoai._structured import StructuredOutput
from spark_aoai._task_params import (
    HasCondition,
    HasFields,
    HasInstructions,
    HasLabels,
    HasMaxWords,
    HasPair,
    HasTargetLanguage,
)
from spark_aoai._tasks import TASKS, Task, describe_fields
from spark_aoai._template import Template
from spark_aoai.exceptions import ConfigurationError
from spark_aoai.transformers import ChatCompletion, Embedding

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from spark_aoai._accessors import (
        AITaskKwargs,
        ClassifyKwargs,
        ExtractKwargs,
        FilterKwargs,
        FixGrammarKwargs,
        SentimentKwargs,
        SimilarityKwargs,
        SummarizeKwargs,
        TranslateKwargs,
    )

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

SETTINGS = ("labels", "multiLabel", "fields", "maxWords", "to")


def _task_defaults(task: Task, output_col: str) -> dict[str, Any]:
    return {"outputCol": output_col, "instructions": task.instructions, **task.defaults}


class AITask(ChatCompletion, HasInstructions):
    """A ``ChatCompletion`` whose system prompt is a task's ``instructions`` (filled with its settings) and
    whose output is the task's: the stage a user's own ``Task`` runs as (``ai.run``)."""

    def __init__(self, **kwargs: Unpack[AITaskKwargs]) -> None:
        super().__init__(**kwargs)  # type: ignore[misc]  # its own Params too

    _task: ClassVar[Task | None] = None
    _stage_defaults: ClassVar[dict[str, Any]] = {**ChatCompletion._stage_defaults, "outputCol": "output"}

    def _settings(self) -> dict[str, Any]:
        return {name: self._get(self.getParam(name)) for name in SETTINGS if self.hasParam(name)}

    def _system_prompt(self) -> str | None:
        settings = self._settings()
        shown = {k: v for k, v in settings.items() if v is not None}
        if "labels" in shown:
            shown["labels"] = ", ".join(shown["labels"])
        if "fields" in shown:
            shown["fields"] = describe_fields(shown["fields"])
        text = self._get(self.instructions) or ""
        try:
            return Template.parse(text, "instructions").render(shown) or None
        except InvalidInputError as exc:  # a setting the instructions name is unset
            raise ConfigurationError(f"{type(self).__name__}: {exc}".replace("nullPlaceholder", "it")) from None

    def _check_settings(self, given: frozenset[str] | None = None) -> None:
        super()._check_settings(given)
        if self._task is not None and self._task.output is not None and self._get(self.outputSchema):
            raise ConfigurationError(f"{type(self).__name__} makes its own output; outputSchema cannot be set")

    def _structured_output(self) -> StructuredOutput | None:
        if self._task is not None and self._task.output is not None:
            return self._task.output(self._settings())
        return super()._structured_output()


class Classify(AITask, HasLabels):
    """``ai.classify``: one of ``labels`` (string), or with ``multiLabel`` those that apply (array<string>)."""

    def __init__(self, **kwargs: Unpack[ClassifyKwargs]) -> None:
        super().__init__(**kwargs)  # type: ignore[misc]  # its own Params too

    _task = TASKS["classify"]
    _stage_defaults: ClassVar[dict[str, Any]] = {**AITask._stage_defaults, **_task_defaults(_task, "label")}


class Extract(AITask, HasFields):
    """``ai.extract``: a struct of ``fields`` (strings, null where the text does not say; or typed)."""

    def __init__(self, **kwargs: Unpack[ExtractKwargs]) -> None:
        super().__init__(**kwargs)  # type: ignore[misc]  # its own Params too

    _task = TASKS["extract"]
    _stage_defaults: ClassVar[dict[str, Any]] = {**AITask._stage_defaults, **_task_defaults(_task, "extracted")}


class Sentiment(AITask):
    """``ai.sentiment``: positive, negative, neutral or mixed."""

    def __init__(self, **kwargs: Unpack[SentimentKwargs]) -> None:
        super().__init__(**kwargs)

    _task = TASKS["sentiment"]
    _stage_defaults: ClassVar[dict[str, Any]] = {**AITask._stage_defaults, **_task_defaults(_task, "sentiment")}


class Summarize(AITask, HasMaxWords):
    """``ai.summarize``: a summary of at most ``maxWords`` words."""

    def __init__(self, **kwargs: Unpack[SummarizeKwargs]) -> None:
        super().__init__(**kwargs)  # type: ignore[misc]  # its own Params too

    _task = TASKS["summarize"]
    _stage_defaults: ClassVar[dict[str, Any]] = {**AITask._stage_defaults, **_task_defaults(_task, "summary")}


class Translate(AITask, HasTargetLanguage):
    """``ai.translate``: the text in the language ``to``."""

    def __init__(self, **kwargs: Unpack[TranslateKwargs]) -> None:
        super().__init__(**kwargs)  # type: ignore[misc]  # its own Params too

    _task = TASKS["translate"]
    _stage_defaults: ClassVar[dict[str, Any]] = {**AITask._stage_defaults, **_task_defaults(_task, "translation")}


class FixGrammar(AITask):
    """``ai.fix_grammar``: the text with its grammar and spelling corrected."""

    def __init__(self, **kwargs: Unpack[FixGrammarKwargs]) -> None:
        super().__init__(**kwargs)

    _task = TASKS["fix_grammar"]
    _stage_defaults: ClassVar[dict[str, Any]] = {**AITask._stage_defaults, **_task_defaults(_task, "corrected")}


class Filter(AITask, HasCondition):
    """``ai.filter``: whether the row's ``inputCol`` satisfies ``condition`` (boolean, ``keep``), a task like any
    other (packing, cache, statistics, batch mode, spend cap); keep the rows with ``.where("keep")``."""

    def __init__(self, **kwargs: Unpack[FilterKwargs]) -> None:
        super().__init__(**kwargs)  # type: ignore[misc]  # its own Params too

    _task = TASKS["filter"]
    _stage_defaults: ClassVar[dict[str, Any]] = {**AITask._stage_defaults, **_task_defaults(_task, "keep")}

    def _templates(self) -> tuple[Template | None, Template | None]:
        """The prompt is the condition (a template over columns) and the row's text; the system prompt the
        task's instructions."""
        input_col, condition = self._get(self.inputCol), self._get(self.condition)
        if not input_col or not condition:
            raise ConfigurationError("ai.filter needs inputCol and condition: ai.filter('text', 'asks for a refund')")
        system = self._system_prompt() or ""
        return Template.parse(filter_template(input_col, condition)), Template.parse(system, "systemPrompt")


class PairCheck(AITask):
    """``ai.join``'s check of a pair (its prompt template given): a boolean, as ``ai.filter``'s."""

    _task = TASKS["filter"]
    _stage_defaults: ClassVar[dict[str, Any]] = {**AITask._stage_defaults, **_task_defaults(_task, "holds")}


class ListMatches(AITask):
    """``ai.join``'s classification plan: the numbers of the listed right rows that match (array<int>)."""

    _task = Task("matches", LISTING_INSTRUCTIONS, output=matches_output)
    _stage_defaults: ClassVar[dict[str, Any]] = {**AITask._stage_defaults, **_task_defaults(_task, "matches")}


class Rank(AITask):
    """``ai.top_k``'s list-wise ranking: the numbers of the listed candidates, best first (array<int>)."""

    _task = Task("rank", RANKING_INSTRUCTIONS, output=ranking_output)
    _stage_defaults: ClassVar[dict[str, Any]] = {**AITask._stage_defaults, **_task_defaults(_task, "ranking")}


SEMANTIC_STAGES: dict[str, type[AITask]] = {
    "check": PairCheck,
    "listing": ListMatches,
    "ranking": Rank,
    "answer": AITask,
}


def _semantic_stage(kind: str, **kwargs: Any) -> AITask:
    """The task stage a semantic operator runs its requests through (so through ``Plan.run``)."""
    return SEMANTIC_STAGES[kind](**kwargs)


class Similarity(Embedding, HasPair):
    """``ai.similarity``: the cosine (double) of the embeddings of ``leftCol`` and ``rightCol``."""

    def __init__(self, **kwargs: Unpack[SimilarityKwargs]) -> None:
        super().__init__(**kwargs)  # type: ignore[misc]  # its own Params too

    _stage_defaults: ClassVar[dict[str, Any]] = {**Embedding._stage_defaults, "outputCol": "similarity"}

    def _inputs(self, schema: StructType) -> Inputs:
        """A row's item is the pair of its texts (``{"left": ..., "right": ...}``), embedded together."""
        for param in ("leftCol", "rightCol"):
            name = self._get(self.getParam(param))
            require_string(require_column(schema, name, param), name, param)
        return Inputs((str(self._get(self.leftCol)), str(self._get(self.rightCol))), as_rows=True, keys=PAIR_KEYS)

    def _combine(self) -> Pairs:
        return Pairs()

    def _vector_output(self) -> bool:
        return False  # the output is the cosine (a double)

    def _operation(self, config: ClientConfig) -> Operation:
        if self._batch_mode():
            raise ConfigurationError(
                "ai.similarity runs online only (not mode='batch'): embed each column with ai.embed(..., mode='batch')"
            )
        return dataclasses.replace(super()._operation(config), outputs=SIMILARITY_OUTPUTS)  # type: ignore[type-var]


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
