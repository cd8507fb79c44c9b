"""The AI task helpers as data: a task is instructions + an output schema + default Params, nothing more.

``TASKS`` holds the built-in ones (``spark_aoai.ai`` turns each into a configured ``ChatCompletion``); a user's
own task is a ``Task`` value too. Instructions are short templates over the task's settings (``{labels}``,
``{to}``, ``{maxWords}``, ``{fields}``), filled on the driver (or, for the SQL functions, per row). The output
builders are module-level functions of those settings, so operations that use them stay picklable. Free of
pyspark.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spark_aoai._core.contract import InvalidInputError
from spark_aoai._planning.param_values import labels as label_list
from spark_aoai._planning.param_values import names
from spark_aoai._planning.schemas import from_ddl, from_json_schema, from_spark_json, output_from
from spark_aoai._planning.semantic import FILTER_INSTRUCTIONS
from spark_aoai._planning.structured import Shape, StructuredOutput, obj
from spark_aoai.exceptions import ConfigurationError

SENTIMENTS = ("positive", "negative", "neutral", "mixed")
Settings = Mapping[str, Any]


@dataclass(frozen=True)
class Task:
    """One task: its instructions (the system prompt), its output, and the Params it sets by default.

    ``output`` builds the structured output from the settings (``None``: a text answer); ``outputSchema`` is
    a fixed one instead (DDL, JSON schema, ...), as a user's own task has:

    >>> keywords = Task("keywords", "List the keywords of the user's text.", outputSchema="keywords array<string>")
    """

    name: str
    instructions: str
    output: Callable[[Settings], StructuredOutput] | None = None
    outputSchema: str | None = None  # camelCase, as the Param it sets (outputSchema)
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def structured(self, settings: Settings) -> StructuredOutput | None:
        if self.output is not None:
            return self.output(settings)
        return output_from(self.outputSchema, self.name) if self.outputSchema else None


def check_labels(labels: Any) -> tuple[str, ...]:
    """Two or more distinct non-blank labels; a string (``"bug,feature"``) is refused, naming the list meant."""
    return tuple(label_list(labels))


def classify_output(settings: Settings) -> StructuredOutput:
    """``{"label": <one of labels>}`` (column: the label), or ``{"labels": [...]}`` with ``multiLabel``."""
    label = Shape("string", nullable=False, enum=check_labels(settings.get("labels")))
    if settings.get("multiLabel"):
        return StructuredOutput(obj([("labels", Shape("array", False, items=label))]), "labels", unwrap="labels")
    return StructuredOutput(obj([("label", label)]), "label", unwrap="label")


def sentiment_output(settings: Settings) -> StructuredOutput:
    return classify_output({"labels": SENTIMENTS})


def filter_output(settings: Settings) -> StructuredOutput:
    """``{"holds": true|false}`` (column: the boolean): whether the row satisfies the condition."""
    return StructuredOutput(obj([("holds", Shape("boolean", nullable=False))]), "verdict", unwrap="holds")


def fields_text(value: Any) -> str:
    """The ``fields`` Param's converter: names, a dict name -> description, a StructType or DDL, as text."""
    if isinstance(value, str):
        try:
            fields_shape(value)
        except ConfigurationError as exc:
            parts = [p.strip() for p in value.split(",") if p.strip()]
            raise ConfigurationError(
                f"fields: {value!r} is not a DDL schema ({str(exc).removeprefix('outputSchema: ')}); to extract "
                f"fields by name give a list: fields={parts!r}, or typed ones as DDL: fields='name string, age int'"
            ) from None
        return value
    if isinstance(value, Mapping):
        keys = names(list(value), "fields")
        if not all(isinstance(v, str) for v in value.values()):
            raise ConfigurationError(f"fields: a dict maps each name to its description (a string), got {value!r}")
        text = json.dumps({k: value[k] for k in keys})
    elif hasattr(value, "jsonValue") and hasattr(value, "fields"):
        text = json.dumps(value.jsonValue())
    elif isinstance(value, Sequence):
        text = json.dumps(names(value, "fields", example="['name', 'city']"))
    else:
        raise TypeError(f"expected field names, a dict name -> description, a StructType or DDL, got {value!r}")
    fields_shape(text)
    return text


def fields_shape(text: str | None) -> Shape:
    """The object ``ai.extract`` asks for: nullable strings (described, for a dict), or the typed fields given."""
    stripped = (text or "").strip()
    if not stripped:
        raise ConfigurationError("fields must name at least one field to extract")
    if stripped.startswith("["):
        names = json.loads(stripped)
        if not names or len(set(names)) != len(names):
            raise ConfigurationError(f"fields must be distinct names, got {names}")
        return obj([(str(n), Shape("string")) for n in names])
    if stripped.startswith("{"):
        parsed = json.loads(stripped)
        if parsed.get("type") == "struct" and "fields" in parsed:
            return obj(list(from_spark_json(parsed).fields))
        if parsed.get("type") == "object":
            return obj(list(from_json_schema(parsed).fields))
        return obj([(str(n), Shape("string", description=str(d))) for n, d in parsed.items()])
    return from_ddl(stripped)


def extract_output(settings: Settings) -> StructuredOutput:
    return StructuredOutput(fields_shape(settings.get("fields")), "extraction")


def extract_map_output(settings: Settings) -> StructuredOutput:
    """For SQL ``ai_extract(text, fields)``: the row's field names, answered as a ``map<string,string>``."""
    fields = names(settings.get("fields") or [], "fields", example="array('name', 'city')")
    return StructuredOutput(fields_shape(json.dumps(fields)), "extraction", as_map=True)


def describe_fields(text: str | None) -> str:
    """How ``{fields}`` reads in the instructions: ``name, city (the city they live in)``."""
    shape = fields_shape(text)
    return ", ".join(f"{n} ({s.description})" if s.description else n for n, s in shape.fields)


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            "classify",
            "Classify the user's text with the labels that fit it, chosen only from: {labels}.",
            output=classify_output,
        ),
        Task(
            "extract",
            "Extract these fields from the user's text: {fields}. Use null for a field the text does not give.",
            output=extract_output,
        ),
        Task(
            "sentiment",
            "Classify the sentiment of the user's text as positive, negative, neutral or mixed.",
            output=sentiment_output,
        ),
        Task(
            "summarize",
            "Summarize the user's text in at most {maxWords} words. Answer with the summary only.",
            defaults={"maxWords": 50},
        ),
        Task("translate", "Translate the user's text into {to}. Answer with the translation only."),
        Task("filter", FILTER_INSTRUCTIONS, output=filter_output),
        Task(
            "fix_grammar",
            "Correct the grammar and spelling of the user's text, keeping its meaning and language. "
            "Answer with the corrected text only.",
        ),
    )
}


def classify_for_row(row: Settings) -> StructuredOutput:
    """SQL ``ai_classify(text, labels)``: this row's labels; bad labels make the row ``invalid_input``."""
    try:
        return classify_output({"labels": _values(row.get("labels"))})
    except ConfigurationError as exc:
        raise InvalidInputError(str(exc)) from None


def extract_for_row(row: Settings) -> StructuredOutput:
    """SQL ``ai_extract(text, fields)``: this row's field names, answered as a map."""
    try:
        return extract_map_output({"fields": _values(row.get("fields"))})
    except ConfigurationError as exc:
        raise InvalidInputError(str(exc)) from None


def _values(value: Any) -> Any:
    """An array argument's values (a list, or the numpy array a pandas UDF gets); [] for null; a string as it
    is, to be refused (never read as its characters)."""
    return [] if value is None else value if isinstance(value, str) else list(value)
