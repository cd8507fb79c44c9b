"""The stages of the AI helpers (``spark_aoai.ai``): a ``ChatCompletion`` per task whose system prompt is the
task's instructions and whose output is the task's, and ``Similarity`` over ``Embedding``. Their public path is
``spark_aoai.ai`` (``__module__``), where saved pipelines find them.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

from pyspark.sql.types import StructType

from spark_aoai._client.config import ClientConfig
from spark_aoai._core.contract import InvalidInputError, Operation
from spark_aoai._engine.plan import Inputs
from spark_aoai._planning.semantic import (
    LISTING_INSTRUCTIONS,
    RANKING_INSTRUCTIONS,
    filter_template,
    matches_output,
    ranking_output,
)
from spark_aoai._planning.structured import StructuredOutput
from spark_aoai._planning.tasks import TASKS, Task, describe_fields
from spark_aoai._planning.template import Template
from spark_aoai._spark.similarity import OUTPUTS as SIMILARITY_OUTPUTS
from spark_aoai._spark.similarity import PAIR_KEYS, Pairs
from spark_aoai._spark.spark_types import require_column, require_string
from spark_aoai._spark.task_params import (
    HasCondition,
    HasFields,
    HasInstructions,
    HasLabels,
    HasMaxWords,
    HasPair,
    HasTargetLanguage,
)
from spark_aoai.exceptions import ConfigurationError
from spark_aoai.transformers import ChatCompletion, Embedding

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from spark_aoai._spark.accessors import (
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


for _stage in (
    AITask,
    Classify,
    Extract,
    Sentiment,
    Summarize,
    Translate,
    FixGrammar,
    Filter,
    PairCheck,
    ListMatches,
    Rank,
    Similarity,
):
    _stage.__module__ = "spark_aoai.ai"  # the public path: saved pipelines name it, and load from it
