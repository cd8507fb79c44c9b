"""Faults that change an answer rather than the transport: 429s of other kinds, odd chat answers, broken
embeddings and structured answers that do not fit their schema.

Markers are matched against the request's input (for embeddings, each input on its own); rates are rolled
on the emulator's seeded generator, so a seed replays the same faults.
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

import numpy as np

from spark_aoai.emulator._errors import ApiError, bare_throttled, capacity_exceeded, quota_exceeded
from spark_aoai.emulator._model import chat_reply, last_user_text, packed_key
from spark_aoai.emulator._settings import BAD_STRUCTURED_KINDS, DEEP_NESTING, PACK_SWAP_KINDS, Faults
from spark_aoai.emulator._state import State
from spark_aoai.emulator._structured import value_for_schema


def throttle(state: State, faults: Faults, route: str, api_version: str) -> ApiError | None:
    """A 429 of another kind than the rate limiter's, when one of their rates comes up."""
    if state.roll(faults.quota_429_rate):
        return quota_exceeded(route, api_version, faults.quota_retry_after_seconds)
    if state.roll(faults.bare_429_rate):
        return bare_throttled()
    if state.roll(faults.capacity_429_rate):
        return capacity_exceeded(faults.capacity_retry_after_seconds)
    return None


def marked(marker: str | None, text: str) -> bool:
    return marker is not None and marker != "" and marker in text


def odd_chat_message(faults: Faults, body: dict[str, Any], text: str, content: str) -> tuple[dict[str, Any], str]:
    """The answer's ``message`` and ``finish_reason`` when a marker asks for content parts or tool calls."""
    if marked(faults.tool_calls_marker, text):
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
        function = (tools[0].get("function") or {}) if tools else {}
        name = str(function.get("name") or "lookup")
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        arguments = json.dumps(value_for_schema(parameters, content, prompt=text))
        call = {
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        return {"role": "assistant", "content": None, "refusal": None, "tool_calls": [call]}, "tool_calls"
    if marked(faults.content_parts_marker, text):
        return {"role": "assistant", "content": [{"type": "text", "text": content}], "refusal": None}, "stop"
    return {"role": "assistant", "content": content, "refusal": None}, "stop"


def misfit(state: State, faults: Faults, content: str, schema: Any, messages: list[dict[str, Any]]) -> str:
    """``content`` (JSON that fits ``schema``) broken one way, when ``bad_structured_rate`` comes up."""
    if not state.roll(faults.bad_structured_rate):
        return content
    kind = faults.bad_structured_kind or BAD_STRUCTURED_KINDS[int(state.uniform(0, len(BAD_STRUCTURED_KINDS)))]
    value = json.loads(content)
    if kind == "not_json" or not isinstance(value, dict) or not value:
        return f"Sure! Here is the JSON you asked for about {last_user_text(messages)[:40]!r}: {content[:-1]}"
    schema = schema if isinstance(schema, dict) else {}
    required = [k for k in (schema.get("required") or []) if k in value]
    key = required[0] if required else next(iter(value))
    if kind == "missing_field":
        del value[key]
    else:
        kind_of_field = ((schema.get("properties") or {}).get(key) or {}).get("type")
        value[key] = "not a number" if kind_of_field in ("number", "integer", "boolean") else 12345
    return json.dumps(value)


def broken_vectors(faults: Faults, inputs: list[str], vectors: np.ndarray) -> list[np.ndarray] | None:
    """Vectors one element short, or holding NaN and +-Infinity, for inputs with their markers (else None)."""
    short = [marked(faults.wrong_dimensions_marker, t) for t in inputs]
    non_finite = [marked(faults.non_finite_marker, t) for t in inputs]
    if not any(short) and not any(non_finite):
        return None
    out: list[np.ndarray] = []
    for row, vector in enumerate(vectors):
        if short[row]:
            vector = vector[:-1]
        if non_finite[row]:
            vector = vector.copy()
            vector[:3] = [math.nan, math.inf, -math.inf]
        out.append(vector)
    return out


PACK_CORRUPTIONS = ("unknown_id", "repeated_id", "misfit_output")


def broken_pack(state: State, faults: Faults, content: str, schema: Any) -> str:
    """A packed answer (``{key: [{"id", ...}]}``) with items left out or corrupted, each rolled per item."""
    if not faults.pack_drop_rate and not faults.pack_corrupt_rate:
        return content
    key = packed_key(schema)
    value = json.loads(content)
    if key is None or not isinstance(value, dict) or not isinstance(value.get(key), list):
        return content
    items = value[key]
    out = []
    for item in items:
        if state.roll(faults.pack_drop_rate):
            continue
        if state.roll(faults.pack_corrupt_rate):
            kind = PACK_CORRUPTIONS[int(state.uniform(0, len(PACK_CORRUPTIONS)))]
            item = dict(item)
            if kind == "unknown_id":
                item["id"] = f"unknown-{item['id']}"
            elif kind == "repeated_id" and len(items) > 1:
                item["id"] = next(other["id"] for other in items if other["id"] != item["id"])
            else:
                field = next((k for k in item if k != "id"), None)
                if field is not None:
                    item[field] = _misfit_value(item[field])
        out.append(item)
    return json.dumps({key: out})


def mixed_pack(state: State, faults: Faults, content: str, schema: Any, messages: list[dict[str, Any]]) -> str:
    """A packed answer a model got wrong: the packing format ignored (a plain-text answer), an item's
    injected instruction obeyed for the whole pack, or two items mixed up (``pack_swap_kind``)."""
    if not (faults.pack_swap_rate or faults.pack_injection_marker or faults.pack_ignore_rate):
        return content
    key = packed_key(schema)
    value = json.loads(content)
    if key is None or not isinstance(value, dict) or not isinstance(value.get(key), list):
        return content
    if state.roll(faults.pack_ignore_rate):
        return chat_reply(messages)
    items = [dict(item) for item in value[key]]
    inputs = _packed_inputs(messages)
    forced = [item for item in items if marked(faults.pack_injection_marker, inputs.get(str(item.get("id")), ""))]
    if forced:
        output = {k: v for k, v in forced[0].items() if k not in ("id", "tag")}
        items = [{**item, **output} for item in items]
    if len(items) > 1 and state.roll(faults.pack_swap_rate):
        kind = faults.pack_swap_kind or PACK_SWAP_KINDS[int(state.uniform(0, len(PACK_SWAP_KINDS)))]
        first = int(state.uniform(0, len(items)))
        second = (first + 1 + int(state.uniform(0, len(items) - 1))) % len(items)
        a, b = items[first], items[second]
        if kind == "items":
            items[first], items[second] = b, a
        else:
            fields = ["id"] if kind == "ids" else [k for k in a if k not in ("id", "tag")]
            for field in fields:
                a[field], b[field] = b.get(field), a.get(field)
    return json.dumps({key: items})


def _packed_inputs(messages: list[dict[str, Any]]) -> dict[str, str]:
    """A packed request's inputs by id, as text."""
    try:
        parsed = json.loads(last_user_text(messages))
    except ValueError:
        return {}
    entries = next(iter(parsed.values()), None) if isinstance(parsed, dict) else None
    if not isinstance(entries, list):
        return {}
    return {str(e.get("id")): json.dumps(e) for e in entries if isinstance(e, dict)}


def _misfit_value(value: Any) -> Any:
    """A value of another kind than ``value``, which no schema of ``value``'s kind accepts."""
    if isinstance(value, str):
        return 12345
    if isinstance(value, dict):
        return {}
    return "not the expected kind"


def nested(depth: int = DEEP_NESTING) -> str:
    """A JSON array nested ``depth`` levels deep: valid JSON no recursive reader survives."""
    return "[" * depth + "]" * depth


def deep_body(answer: dict[str, Any]) -> bytes:
    """``answer`` with a field nested DEEP_NESTING levels deep (built as text: json.dumps would recurse)."""
    return (json.dumps(answer)[:-1] + ', "nested": ' + nested() + "}").encode("utf-8")


def non_finite(faults: Faults, content: str, text: str) -> str:
    """A structured answer whose top-level numbers are ``non_finite_literal``, when its marker is in ``text``."""
    if not marked(faults.non_finite_answer_marker, text):
        return content
    value = json.loads(content)
    if not isinstance(value, dict):
        return content
    numeric = [k for k, v in value.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not numeric:
        return content
    placeholder = "__non_finite__"
    return json.dumps({k: placeholder if k in numeric else v for k, v in value.items()}).replace(
        json.dumps(placeholder), faults.non_finite_literal
    )


def without_text(faults: Faults, response: dict[str, Any], text: str) -> dict[str, Any]:
    """A Responses API body with no usable text (``no_text_kind``), when its marker is in ``text``."""
    if not marked(faults.no_text_marker, text):
        return response
    kind = faults.no_text_kind
    reasoning = {"type": "reasoning", "id": f"rs_{uuid.uuid4().hex}", "summary": []}
    if kind == "reasoning_only":
        return {**response, "output": [reasoning]}
    if kind == "in_progress":
        return {**response, "status": "in_progress", "output": [reasoning]}
    if kind == "output_string":
        return {**response, "output": "the answer, but as a bare string"}
    message = {"type": "message", "id": f"msg_{uuid.uuid4().hex}", "status": "completed", "role": "assistant",
               "content": [{"type": "output_audio", "transcript": "spoken"}]}  # fmt: skip
    return {**response, "output": [message]}
