"""The Responses API: ``input`` (a string or messages of text, image and file parts), ``instructions``,
``text.format``, ``reasoning.effort``, ``text.verbosity`` and ``max_output_tokens``, answered with a
``reasoning`` item for reasoning models and a ``message`` item.

Served at ``/openai/v1/responses`` and ``/openai/responses?api-version=...`` (the deployment in ``model``). The
request is mapped onto chat messages (:func:`to_messages`), so the answer is the chat answer to the same
conversation; a response cut off by ``max_output_tokens`` is ``incomplete``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from spark_aoai.emulator._catalog import REASONING_EFFORTS, find_model, reasoning_tokens
from spark_aoai.emulator._errors import invalid
from spark_aoai.emulator._faults import broken_pack, misfit, mixed_pack, without_text
from spark_aoai.emulator._media import chat_part
from spark_aoai.emulator._model import chat_reply, message_text, structured_reply
from spark_aoai.emulator._state import State
from spark_aoai.emulator._tokencount import count_message_tokens, count_tokens, truncate_to_tokens

VERBOSITIES = ("low", "medium", "high")
MIN_OUTPUT_TOKENS = 16


def to_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation a Responses request stands for, as chat messages (``instructions`` first)."""
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "developer", "content": instructions})
    raw = body.get("input")
    if isinstance(raw, str):
        messages.append({"role": "user", "content": raw})
    elif isinstance(raw, list):
        for index, item in enumerate(raw):
            if not isinstance(item, dict):
                raise invalid(
                    f"input[{index}]", f"Invalid type for 'input[{index}]': expected an object.", "invalid_type"
                )
            if item.get("type", "message") != "message":
                continue  # tool outputs and earlier reasoning items carry no new question
            content = item.get("content")
            parts = [chat_part(p) for p in content] if isinstance(content, list) else content
            messages.append({"role": str(item.get("role") or "user"), "content": parts})
    if not any(m["role"] != "developer" for m in messages):
        raise invalid("input", "Missing required parameter: 'input'.", "missing_required_parameter")
    return messages


def last_input_text(body: dict[str, Any]) -> str:
    """The text of a request's last input message (for the stats), never raising."""
    raw = body.get("input")
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list) and raw and isinstance(raw[-1], dict):
        content = raw[-1].get("content")
        if isinstance(content, list):
            return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p)
        return str(content or "")
    return ""


def check(body: dict[str, Any], model: str) -> list[dict[str, Any]]:
    """Refuse what the Responses API refuses (beyond the sampling checks all routes share); the messages."""
    messages = to_messages(body)
    reasoning = body.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    if effort is not None:
        if effort not in REASONING_EFFORTS:
            allowed = "', '".join(REASONING_EFFORTS)
            raise invalid("reasoning.effort", f"Invalid value: '{effort}'. Supported values are: '{allowed}'.")
        facts = find_model(model)
        if facts is not None and not facts.reasoning:
            raise invalid(
                "reasoning.effort",
                "Unsupported parameter: 'reasoning.effort' is not supported with this model.",
                "unsupported_parameter",
            )
    text: dict[str, Any] = v if isinstance(v := body.get("text"), dict) else {}
    verbosity = text.get("verbosity")
    if verbosity is not None and verbosity not in VERBOSITIES:
        raise invalid(
            "text.verbosity", f"Invalid value: '{verbosity}'. Supported values are: 'low', 'medium', and 'high'."
        )
    limit = body.get("max_output_tokens")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < MIN_OUTPUT_TOKENS):
        raise invalid(
            "max_output_tokens",
            f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= {MIN_OUTPUT_TOKENS}, "
            f"but got {limit} instead.",
            "integer_below_min_value",
        )
    return messages


def answer(model: str, body: dict[str, Any], state: State) -> dict[str, Any]:
    """The response object: reasoning (for reasoning models) and the message, cut off at ``max_output_tokens``."""
    messages = to_messages(body)
    text: dict[str, Any] = v if isinstance(v := body.get("text"), dict) else {}
    text_format = text.get("format") or {"type": "text"}
    if text_format.get("type") == "json_schema":
        content = structured_reply(messages, {"type": "json_schema", "json_schema": text_format})
        content = misfit(state, state.settings.faults, content, text_format.get("schema"), messages)
        content = broken_pack(state, state.settings.faults, content, text_format.get("schema"))
        content = mixed_pack(state, state.settings.faults, content, text_format.get("schema"), messages)
    elif text_format.get("type") == "json_object":
        content = structured_reply(messages, {"type": "json_object"})
    else:
        content = chat_reply(messages)
    reasoning: dict[str, Any] = v if isinstance(v := body.get("reasoning"), dict) else {}
    thinking = reasoning_tokens(model, reasoning.get("effort"))
    limit = body.get("max_output_tokens")
    incomplete = isinstance(limit, int) and thinking + count_tokens(content, model) > limit
    if isinstance(limit, int) and incomplete:
        thinking = min(thinking, limit)
        content = truncate_to_tokens(content, limit - thinking, model)
    output: list[dict[str, Any]] = []
    if find_model(model) is not None and thinking:
        output.append({"type": "reasoning", "id": f"rs_{uuid.uuid4().hex}", "summary": []})
    if content or not incomplete:
        output.append(
            {
                "type": "message",
                "id": f"msg_{uuid.uuid4().hex}",
                "status": "incomplete" if incomplete else "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": content, "annotations": []}],
            }
        )
    prompt = " ".join(message_text(m.get("content")) for m in messages)
    input_tokens = count_message_tokens(messages, model)
    output_tokens = thinking + count_tokens(content, model)
    cached, written = state.cached_tokens(f"{model}\n{prompt}", input_tokens)
    response = {
        "id": f"resp_{uuid.uuid4().hex}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if incomplete else "completed",
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": limit,
        "metadata": body.get("metadata") or {},
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": None},
        "temperature": body.get("temperature", 1.0),
        "text": {"format": text_format, "verbosity": text.get("verbosity", "medium")},
        "tool_choice": "auto",
        "tools": [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": thinking},
            "total_tokens": input_tokens + output_tokens,
        },
    }
    return without_text(state.settings.faults, response, prompt)
