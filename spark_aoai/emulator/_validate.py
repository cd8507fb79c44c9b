"""Request checks: what Azure refuses with a 400, and what an admitted request costs the token budget.

:func:`inputs_of` names what a request asks about (the texts the stats count); :func:`validate` raises an
:class:`~spark_aoai.emulator._errors.ApiError` for what Azure refuses and returns the request's token cost.
Parameter checks always apply; the model's own limits apply when the model is known (see ``_catalog``).
"""

from __future__ import annotations

import json
from typing import Any

from spark_aoai.emulator import _responses
from spark_aoai.emulator._catalog import Model, find_model
from spark_aoai.emulator._errors import (
    bad_request,
    content_filtered,
    context_length_exceeded,
    invalid,
    operation_not_supported,
)
from spark_aoai.emulator._model import message_text
from spark_aoai.emulator._responses import last_input_text
from spark_aoai.emulator._settings import Faults
from spark_aoai.emulator._tokencount import count_message_tokens, count_tokens

MAX_EMBEDDING_INPUTS = 2048
# What the limiter charges a request for its answer when it sets no max_tokens / max_completion_tokens /
# max_output_tokens: Azure charges its estimate of the answer before running the request.
DEFAULT_COMPLETION_ALLOWANCE = 16
# An unknown model's context limit when only the context-length marker asks for a refusal.
MARKER_CONTEXT_TOKENS = 8192
RESPONSE_FORMATS = ("text", "json_object", "json_schema")


def inputs_of(route: str, body: dict[str, Any]) -> list[str]:
    """The texts a request asks about: embedding inputs, a chat's last message, a response's input."""
    if route == "embeddings":
        raw = body.get("input")
        items = raw if isinstance(raw, list) else [raw]
        return [item if isinstance(item, str) else json.dumps(item) for item in items]
    if route == "chat":
        messages = body.get("messages")
        if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
            return [message_text(messages[-1].get("content"))]
        return []
    return [last_input_text(body)]


def validate(route: str, body: dict[str, Any], inputs: list[str], model: str, faults: Faults) -> int:
    """Reject what Azure rejects; return the request's token cost for the rate limit (counted for ``model``).

    The cost is the prompt's tokens plus the answer's allowance: the request's own maximum, else
    :data:`DEFAULT_COMPLETION_ALLOWANCE`; an embeddings request costs its inputs' tokens.
    """
    facts = find_model(model)
    if facts is not None and (facts.kind == "embeddings") != (route == "embeddings"):
        raise operation_not_supported("embeddings" if route == "embeddings" else "chatCompletion", model)
    if route == "embeddings":
        _check_embeddings(body, inputs, facts)
    else:
        _check_sampling(body, facts)
    if route == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise bad_request("'messages' must be a non-empty array of message objects.")
        _check_response_format(body.get("response_format"), "response_format")
        _check_logprobs(body, facts)
        prompt = count_message_tokens(messages, model)
        completion = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_COMPLETION_ALLOWANCE
        check_content(" ".join(message_text(m.get("content")) for m in messages), prompt, faults, facts)
        return prompt + int(completion)
    if route == "embeddings":
        counts = [count_tokens(text, model) for text in inputs]
        for text, count in zip(inputs, counts, strict=True):
            check_content(text, count, faults, facts, "input")
        return sum(counts)
    messages = _responses.check(body, model)
    text_format = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if text_format is not None:
        _check_response_format({**text_format, "json_schema": text_format}, "text.format")
    prompt = count_message_tokens(messages, model)
    check_content(" ".join(message_text(m.get("content")) for m in messages), prompt, faults, facts, "input")
    return prompt + int(body.get("max_output_tokens") or DEFAULT_COMPLETION_ALLOWANCE)


def _check_embeddings(body: dict[str, Any], inputs: list[str], facts: Model | None) -> None:
    raw = body.get("input")
    if raw is None or raw == "" or raw == [] or any(i == "" for i in inputs):
        raise bad_request("'$.input' is invalid. Please check the API reference.", "invalid_request_error")
    if len(inputs) > MAX_EMBEDDING_INPUTS:
        raise bad_request(
            f"Too many inputs. The max number of inputs is {MAX_EMBEDDING_INPUTS}.", "invalid_request_error"
        )
    dimensions = body.get("dimensions")
    if dimensions is None:
        return
    if facts is not None and not facts.custom_dimensions:
        raise invalid("dimensions", "This model does not support specifying dimensions.", "invalid_request_error")
    if not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1:
        raise invalid("dimensions", f"Invalid value for 'dimensions' = {dimensions}. Must be greater than 0.")
    if facts is not None and facts.embedding_dimensions and dimensions > facts.embedding_dimensions:
        raise invalid(
            "dimensions",
            f"Invalid value for 'dimensions' = {dimensions}. Must be less than or equal to "
            f"{facts.embedding_dimensions}.",
        )


def _check_range(body: dict[str, Any], name: str, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise invalid(
            name, f"Invalid type for '{name}': expected a decimal, but got a {type(value).__name__}.", "invalid_type"
        )
    if value > high:
        raise invalid(
            name,
            f"Invalid '{name}': decimal above maximum value. Expected a value <= {high:g}, but got {value} instead.",
            "decimal_above_max_value",
        )
    if value < 0:
        raise invalid(
            name,
            f"Invalid '{name}': decimal below minimum value. Expected a value >= 0, but got {value} instead.",
            "decimal_below_min_value",
        )


def _check_sampling(body: dict[str, Any], facts: Model | None) -> None:
    _check_range(body, "temperature", 2.0)
    _check_range(body, "top_p", 1.0)
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        raise invalid(
            "max_tokens",
            "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported.",
            "invalid_request_error",
        )
    if facts is None or not facts.reasoning:
        return
    if body.get("max_tokens") is not None:
        raise invalid(
            "max_tokens",
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' "
            "instead.",
            "unsupported_parameter",
        )
    for name in ("temperature", "top_p"):
        if body.get(name) not in (None, 1, 1.0):
            raise invalid(
                name,
                f"Unsupported value: '{name}' does not support {body[name]} with this model. Only the default (1) "
                "value is supported.",
                "unsupported_value",
            )


def _check_logprobs(body: dict[str, Any], facts: Model | None) -> None:
    """Azure's contract: ``logprobs`` a boolean, ``top_logprobs`` 0 to 20 and only with ``logprobs: true``;
    reasoning models return none."""
    wanted, top = body.get("logprobs"), body.get("top_logprobs")
    if wanted is not None and not isinstance(wanted, bool):
        raise invalid(
            "logprobs", f"Invalid type for 'logprobs': expected a boolean, but got {wanted!r}.", "invalid_type"
        )
    if top is not None:
        if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= 20:
            raise invalid("top_logprobs", f"Invalid 'top_logprobs': expected an integer 0 to 20, got {top!r}.",
                          "invalid_value")  # fmt: skip
        if wanted is not True:
            raise invalid("top_logprobs", "'logprobs' must be set to true when 'top_logprobs' is used.",
                          "invalid_value")  # fmt: skip
    if wanted and facts is not None and facts.reasoning:
        raise invalid("logprobs", "Unsupported parameter: 'logprobs' is not supported with this model.",
                      "unsupported_parameter")  # fmt: skip


def _check_response_format(response_format: Any, param: str) -> None:
    if response_format is None:
        return
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind not in RESPONSE_FORMATS:
        raise invalid(
            f"{param}.type",
            f"Invalid value: '{kind}'. Supported values are: 'text', 'json_object', and 'json_schema'.",
        )
    if kind != "json_schema":
        return
    json_schema = response_format.get("json_schema")
    if not isinstance(json_schema, dict):
        raise invalid(
            f"{param}.json_schema", f"Missing required parameter: '{param}.json_schema'.", "missing_required_parameter"
        )
    for field in ("name", "schema"):
        if field not in json_schema:
            where = f"{param}.json_schema.{field}" if param == "response_format" else f"{param}.{field}"
            raise invalid(where, f"Missing required parameter: '{where}'.", "missing_required_parameter")


def check_content(text: str, tokens: int, faults: Faults, facts: Model | None, param: str = "messages") -> None:
    """The content-filter and context-length refusals: markers in the input, or more tokens than allowed.

    The limit is ``faults.max_input_tokens`` when set, else the model's context limit (none for an unknown
    model); the context-length marker refuses whatever the length.
    """
    if faults.content_filter_marker and faults.content_filter_marker in text:
        raise content_filtered()
    limit = faults.max_input_tokens or (facts.context_tokens if facts else None)
    marked = bool(faults.context_length_marker and faults.context_length_marker in text)
    if marked or (limit is not None and tokens > limit):
        raise context_length_exceeded(limit or MARKER_CONTEXT_TOKENS, tokens, param)
