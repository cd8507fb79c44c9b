"""The AI task helpers' own settings as Params (their defaults come from each task, in ``_tasks``), each checked
when it is set: ``labels="bug,feature"`` is refused there, naming the fix."""

from __future__ import annotations

from typing import Any, ClassVar

from pyspark.ml.param import TypeConverters

from spark_aoai._planning.param_values import labels as label_list
from spark_aoai._planning.param_values import template, text, whole
from spark_aoai._planning.tasks import fields_text
from spark_aoai._spark.accessors import (
    HasConditionAccessors,
    HasFieldsAccessors,
    HasInstructionsAccessors,
    HasLabelsAccessors,
    HasMaxWordsAccessors,
    HasPairAccessors,
    HasTargetLanguageAccessors,
)
from spark_aoai._spark.params import _param


class HasInstructions(HasInstructionsAccessors):
    instructions = _param(
        "instructions", "the task's system prompt; {labels}, {to}, {maxWords}, {fields} are its settings",
        TypeConverters.toString,
    )  # fmt: skip
    _param_defaults: ClassVar[dict[str, Any]] = {}


class HasLabels(HasLabelsAccessors):
    labels = _param(
        "labels", "the labels to choose from (2 or more); an answer outside them is invalid_output", label_list
    )
    multiLabel = _param(
        "multiLabel", "every label that applies (array<string>) instead of one", TypeConverters.toBoolean
    )
    _param_defaults: ClassVar[dict[str, Any]] = {"multiLabel": False}


class HasFields(HasFieldsAccessors):
    fields = _param(
        "fields", "fields to extract: names, a dict name -> description, or a StructType / DDL for typed ones",
        fields_text,
    )  # fmt: skip
    _param_defaults: ClassVar[dict[str, Any]] = {}


class HasMaxWords(HasMaxWordsAccessors):
    maxWords = _param("maxWords", "longest summary, in words", whole("maxWords", 1))
    _param_defaults: ClassVar[dict[str, Any]] = {}


class HasTargetLanguage(HasTargetLanguageAccessors):
    to = _param("to", "the language to translate into, e.g. 'French'", text("to"))
    _param_defaults: ClassVar[dict[str, Any]] = {}


class HasPair(HasPairAccessors):
    leftCol = _param("leftCol", "first text column", TypeConverters.toString)
    rightCol = _param("rightCol", "second text column", TypeConverters.toString)
    _param_defaults: ClassVar[dict[str, Any]] = {}


class HasCondition(HasConditionAccessors):
    inputCol = _param("inputCol", "the text column the condition is checked on", TypeConverters.toString)
    condition = _param(
        "condition", "what a kept row satisfies, in words; a template over columns ({col})", template("condition")
    )
    _param_defaults: ClassVar[dict[str, Any]] = {}
