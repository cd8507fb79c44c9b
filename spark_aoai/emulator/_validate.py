"""Request checks: what Azure refuses with a 400, and what an admitted request costs the token budget.

:func:`inputs_of` names what a request asks about (the texts the stats count); :func:`validate` raises an
:class:`~spark_aoai.emulator._errors.ApiError` for what Azure refuses and returns the request's token cost.
"""

from __future__ import annotations

import json
from typing import Any

from spark_aoai.emulator._errors import bad_request, content_filtered, context_length_exceeded
from spark_aoai.emulator._model import message_text
from spark_aoai.emulator._settings import Faults
from spark_aoai.emulator._tokencount import count_message_tokens, count_tokens

MAX_EMBEDDING_INPUTS = 2048
# What the limiter charges a request for its answer when it sets no max_tokens / max_completion_tokens /
# max_output_tokens: Azure charges its estimate of the answer before running the request.
DEFAULT_COMPLETION_ALLOWANCE = 16


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
    text = body.get("input")
    return [text if isinstance(text, str) else json.dumps(text)]


def validate(route: str, body: dict[str, Any], inputs: list[str], model: str, faults: Faults) -> int:
    """Reject what Azure rejects; return the request's token cost for the rate limit (counted for ``model``).

    The cost is the prompt's tokens plus the answer's allowance: the request's own maximum, else
    :data:`DEFAULT_COMPLETION_ALLOWANCE`; an embeddings request costs its inputs' tokens.
    """
    if route == "embeddings":
        raw = body.get("input")
        if raw is None or raw == "" or raw == [] or any(i == "" for i in inputs):
            raise bad_request("'$.input' is invalid. Please check the API reference.", "invalid_request_error")
        if len(inputs) > MAX_EMBEDDING_INPUTS:
            raise bad_request(
                f"Too many inputs. The max number of inputs is {MAX_EMBEDDING_INPUTS}.", "invalid_request_error"
            )
    elif route == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise bad_request("'messages' must be a non-empty array of message objects.")
        prompt = count_message_tokens(messages, model)
        completion = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_COMPLETION_ALLOWANCE
        check_content(" ".join(message_text(m.get("content")) for m in messages), prompt, faults)
        return prompt + int(completion)
    counts = [count_tokens(text, model) for text in inputs]
    for text, count in zip(inputs, counts, strict=True):
        check_content(text, count, faults)
    if route == "embeddings":
        return sum(counts)
    return sum(counts) + int(body.get("max_output_tokens") or DEFAULT_COMPLETION_ALLOWANCE)


def check_content(text: str, tokens: int, faults: Faults) -> None:
    """The content-filter and context-length refusals that markers in the input (or its length) trigger."""
    if faults.content_filter_marker and faults.content_filter_marker in text:
        raise content_filtered()
    too_long = faults.max_input_tokens is not None and tokens > faults.max_input_tokens
    if too_long or (faults.context_length_marker and faults.context_length_marker in text):
        raise context_length_exceeded(faults.max_input_tokens or 8192, tokens)
