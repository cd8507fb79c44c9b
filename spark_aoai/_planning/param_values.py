"""What each Param accepts, checked when it is set (constructor, ``setParams``, ``set``, ``copy``, ``load``).

A Param's converter refuses a wrong type, an unknown choice or a number out of range with a
``ConfigurationError`` that names the Param and the fix, so a bad value never waits for ``transform()``.
Settings that are wrong only together (``mode='batch'`` without ``batchDir``) are ``Rule``s, checked where a
stage's whole configuration is known (see ``_stage.AzureOpenAIStage``). Free of pyspark.
"""

from __future__ import annotations

import json
import math
import numbers
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spark_aoai._planning.template import Template
from spark_aoai._wire.responses import MIN_OUTPUT_TOKENS
from spark_aoai.exceptions import ConfigurationError

Converter = Callable[[Any], Any]


def choice(name: str, choices: Sequence[str]) -> Converter:
    """One of ``choices``: ``mode``, ``apiType``, ``reasoningEffort``, ..."""

    def convert(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise ConfigurationError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return value

    return convert


def _number(name: str, value: Any, whole: bool) -> Any:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        kind = "a whole number" if whole else "a number"
        raise ConfigurationError(f"{name} must be {kind}, got {value!r} ({type(value).__name__})")
    number = float(value)
    if not math.isfinite(number):
        raise ConfigurationError(f"{name} must be a finite number, got {value!r}")
    if not whole:
        return number
    if isinstance(value, numbers.Integral):
        return operator.index(value)
    if not number.is_integer():
        raise ConfigurationError(f"{name} must be a whole number, got {value!r}")
    return int(number)


def _in_range(name: str, number: float, low: float | None, high: float | None, above: bool, unit: str) -> None:
    too_low = low is not None and (number <= low if above else number < low)
    if too_low or (high is not None and number > high):
        if low is not None and high is not None:
            limits = f"between {low:g} and {high:g}"
        elif above:
            limits = f"greater than {low:g}"
        else:
            limits = "0 or more" if low == 0 else f"at least {low:g}"
        raise ConfigurationError(f"{name} must be {limits}{unit}, got {number:g}")


def whole(name: str, low: int | None = None, high: int | None = None, unit: str = "") -> Converter:
    """A whole number in ``[low, high]``: ``maxTokens``, ``batchSize``, ..."""

    def convert(value: Any) -> int:
        number = _number(name, value, whole=True)
        _in_range(name, number, low, high, False, unit)
        return int(number)

    return convert


def real(
    name: str, low: float | None = None, high: float | None = None, above: bool = False, unit: str = ""
) -> Converter:
    """A finite number in ``[low, high]`` (``above``: strictly greater than ``low``): ``temperature``, ..."""

    def convert(value: Any) -> float:
        number = _number(name, value, whole=False)
        _in_range(name, number, low, high, above, unit)
        return float(number)

    return convert


def text(name: str) -> Converter:
    """A non-blank string: ``to`` (the language of ``ai.translate``)."""

    def convert(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(f"{name} must be a non-blank string, got {value!r}")
        return value

    return convert


def names(value: Any, name: str, at_least: int = 1, example: str = "['a', 'b']") -> list[str]:
    """A list of distinct non-blank strings (``labels``, ``fields``): a string where a list belongs is refused
    with the list it probably meant, so ``labels="bug,feature"`` is never one label ``bug,feature``."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
        meant = repr(parts) if len(parts) > 1 else example
        raise ConfigurationError(f"{name} must be a list of strings, not one string {value!r}: {name}={meant}")
    if isinstance(value, Mapping) or (not isinstance(value, Sequence) and not hasattr(value, "tolist")):
        raise ConfigurationError(f"{name} must be a list of strings, got {type(value).__name__}: {name}={example}")
    values = list(value.tolist() if hasattr(value, "tolist") else value)
    bad = [v for v in values if not isinstance(v, str) or not v.strip()]
    if bad:
        raise ConfigurationError(f"{name} must hold non-blank strings only, got {bad[0]!r} in {values!r}")
    if len(values) < at_least:
        entries = "entries" if at_least > 1 else "entry"
        raise ConfigurationError(f"{name} needs at least {at_least} {entries}, got {values!r}: {name}={example}")
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ConfigurationError(f"{name} must be distinct, {repeated} repeated in {values!r}")
    return values


def labels(value: Any) -> list[str]:
    """``labels`` of ``ai.classify``: two or more (one label would label every row with it)."""
    return names(value, "labels", at_least=2, example="['bug', 'feature']")


def stop_sequences(value: Any) -> list[str]:
    """``stop``: a string or a list of up to 4 non-empty strings (Azure's limit)."""
    values = [value] if isinstance(value, str) else value
    if isinstance(values, Mapping) or not isinstance(values, Sequence) or not values or len(values) > 4:
        raise ConfigurationError(f"stop must be a string or a list of 1 to 4 strings, got {value!r}")
    if not all(isinstance(v, str) and v for v in values):
        raise ConfigurationError(f"stop must hold non-empty strings only, got {value!r}")
    return list(values)


def json_text(value: Any) -> str:
    """Params holding JSON (responseFormat, extraBody) accept a dict or JSON text; stored as JSON text."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError as exc:
            raise TypeError(f"expected a dict or JSON text, got {value!r}") from exc
        return value
    if not isinstance(value, dict):
        raise TypeError(f"expected a dict or JSON text, got a {type(value).__name__}")
    return json.dumps(value)


RESPONSE_FORMAT_TYPES = ("text", "json_object", "json_schema")


def check_response_format(value: Any) -> None:
    """Refuse a response_format the service would refuse, naming the Param."""
    if not isinstance(value, dict) or value.get("type") not in RESPONSE_FORMAT_TYPES:
        raise ConfigurationError(
            f"responseFormat must be a dict with type one of {', '.join(RESPONSE_FORMAT_TYPES)}, got {value!r}"
        )
    if value["type"] == "json_schema":
        schema = value.get("json_schema")
        if not isinstance(schema, dict) or not schema.get("name") or not isinstance(schema.get("schema"), dict):
            raise ConfigurationError(
                "responseFormat: json_schema needs {'name': ..., 'schema': {...}} "
                "(e.g. {'type': 'json_schema', 'json_schema': {'name': 'answer', 'schema': {...}, 'strict': True}})"
            )


def response_format(value: Any) -> str:
    """``responseFormat``: a dict or JSON text of a format the service takes, stored as JSON text."""
    text = json_text(value)
    check_response_format(json.loads(text))
    return text


def template(name: str) -> Converter:
    """A template over columns (``promptTemplate``): a lone brace or an empty placeholder is refused when set."""

    def convert(value: Any) -> str:
        if not isinstance(value, str):
            raise ConfigurationError(f"{name} must be a string, got {type(value).__name__}")
        Template.parse(value, name)
        return value

    return convert


def rows_per_request(value: Any) -> int | str:
    """``rowsPerRequest``: a whole number of rows (1: no packing) or ``"auto"``."""
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit() or int(value) < 1:
        raise TypeError(f"rowsPerRequest is a whole number of rows (1 or more) or 'auto', not {value!r}")
    return int(value)


# -- settings wrong only together ---------------------------------------------------------------------------

Get = Callable[[str], Any]  # a Param's value by name (None when unset and without default)


@dataclass(frozen=True)
class Rule:
    """Params that are wrong together: ``check`` reads them and returns what is wrong (naming the Params and
    the fix), or None. Checked when a stage is built with all of them, on ``copy`` and at ``transform``."""

    params: tuple[str, ...]
    check: Callable[[Get], str | None]


def broken(
    rules: Sequence[Rule], get: Get, known: Callable[[str], bool], given: frozenset[str] | None = None
) -> str | None:
    """The first rule ``get``'s values break, among the rules whose Params all exist (``known``) and, with
    ``given`` (the Params of one ``setParams`` call), two of whose Params were given together: Params set one
    at a time are never refused half way."""
    for rule in rules:
        if all(known(p) for p in rule.params) and (given is None or len(given.intersection(rule.params)) >= 2):
            problem = rule.check(get)
            if problem:
                return problem
    return None


def _batch_without_directory(get: Get) -> str | None:
    if get("mode") == "batch" and not get("batchDir"):
        return (
            "mode='batch' needs batchDir: a directory for the job's manifests "
            "(e.g. batchDir='/lakehouse/default/Files/batches')"
        )
    return None


def _not_in_responses(param: str) -> Rule:
    def check(get: Get) -> str | None:
        if get("apiType") == "responses" and get(param) is not None:
            return (
                f"{param} does not exist in the Responses API (apiType='responses'): unset {param}, or use "
                "apiType='chat_completions'"
            )
        return None

    return Rule(("apiType", param), check)


def _below_responses_minimum(param: str) -> Rule:
    def check(get: Get) -> str | None:
        value = get(param)
        if get("apiType") == "responses" and value is not None and value < MIN_OUTPUT_TOKENS:
            return (
                f"{param}={value} is below the Responses API's minimum max_output_tokens of {MIN_OUTPUT_TOKENS} "
                f"(every row would be a 400): set {param}={MIN_OUTPUT_TOKENS} or more"
            )
        return None

    return Rule(("apiType", param), check)


def _one_of(params: tuple[str, ...], message: str) -> Rule:
    return Rule(params, lambda get: message if sum(bool(get(p)) for p in params) > 1 else None)


def _packed_with(param: str, why: str) -> Rule:
    def check(get: Get) -> str | None:
        if get(param) and get("rowsPerRequest") not in (None, 1):
            return f"rowsPerRequest: {why}; set rowsPerRequest=1 (or unset {param})"
        return None

    return Rule((param, "rowsPerRequest"), check)


REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def is_reasoning_deployment(name: str) -> bool:
    """Whether a deployment's name says it is a reasoning model (o1, o3, o4-mini, gpt-5, gpt-5-mini, ...)."""
    return name.lower().startswith(REASONING_PREFIXES)


def not_for_this_model(deployment: str, reasoning: bool | None, effort: Any, verbosity: Any) -> str | None:
    """Why ``reasoningEffort``/``verbosity`` cannot go to ``deployment`` (``reasoning``: ``reasoningModel``)."""
    if reasoning is None:
        reasoning = is_reasoning_deployment(deployment)
    if not reasoning and (effort is not None or verbosity is not None):
        return (
            f"reasoningEffort and verbosity are for reasoning models; deployment {deployment!r} is not one by its "
            "name (set reasoningModel=True if it is)"
        )
    return None


def _reasoning_settings(get: Get) -> str | None:
    deployment = get("deploymentName")  # with deployments=[...], transform checks the first one
    return (
        None
        if deployment is None
        else not_for_this_model(deployment, get("reasoningModel"), get("reasoningEffort"), get("verbosity"))
    )


PROMPT_SOURCES = ("promptCol", "messagesCol", "promptTemplate")
ONE_PROMPT_SOURCE = "set exactly one of promptCol and messagesCol (or promptTemplate)"

RULES: tuple[Rule, ...] = (
    Rule(("mode", "batchDir"), _batch_without_directory),
    *(_not_in_responses(p) for p in ("seed", "stop", "presencePenalty", "frequencyPenalty")),
    *(_below_responses_minimum(p) for p in ("maxTokens", "maxCompletionTokens")),
    _one_of(("maxTokens", "maxCompletionTokens"), "set maxTokens or maxCompletionTokens, not both"),
    _one_of(PROMPT_SOURCES, ONE_PROMPT_SOURCE),
    _one_of(
        ("deploymentName", "deployments"),
        "give deploymentName (one deployment) or deployments=[...] (failover), not both",
    ),
    Rule(("deploymentName", "reasoningEffort", "verbosity", "reasoningModel"), _reasoning_settings),
    _one_of(
        ("outputSchema", "responseFormat"),
        "set outputSchema or responseFormat, not both (outputSchema makes the format)",
    ),
    _packed_with("messagesCol", "messagesCol (whole conversations) cannot be packed; use promptCol or promptTemplate"),
    _packed_with("imageCol", "rows with imageCol are not packed (a row's image must never reach another's answer)"),
    _packed_with("fileCol", "rows with fileCol are not packed (a row's file must never reach another's answer)"),
)
