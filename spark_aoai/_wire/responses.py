"""The Responses API on the wire: chat-style messages and options mapped onto its request, and its ``output``
read back into the same ``Answer`` chat completions give, so every option works the same with both APIs.

Request: the system message becomes ``instructions``, the rest ``input`` (image and file parts as
``input_image`` / ``input_file``); ``max_tokens`` is
``max_output_tokens``; ``response_format`` is ``text.format``; ``reasoning_effort`` is ``reasoning.effort``;
``verbosity`` is ``text.verbosity``. Answer: the concatenated ``output_text`` parts of the ``message`` items.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spark_aoai._core.constants import MAX_MESSAGE_CHARS
from spark_aoai._core.contract import ErrorCode, MalformedResponseError, Route, RowError, Usage
from spark_aoai._wire.chat import Answer, _count, cut_short
from spark_aoai._wire.media import responses_content

# v1: ``{base}/openai/v1/responses`` on Azure (the older ``/openai/responses?api-version=`` when one is given)
ROUTE = Route("responses", deployment_scoped=False, v1=True)
# Chat options the Responses API has under the same name, and those it names differently.
SAME_NAME = ("temperature", "top_p", "user", "store", "metadata", "parallel_tool_calls", "service_tier")
RENAMED = {"max_tokens": "max_output_tokens", "max_completion_tokens": "max_output_tokens"}
UNSUPPORTED = ("seed", "stop", "presence_penalty", "frequency_penalty", "logprobs", "n")
MIN_OUTPUT_TOKENS = 16  # a smaller max_output_tokens is Azure's 400


def build_body(messages: list[dict[str, Any]], options: Mapping[str, Any], model: str | None) -> dict[str, Any]:
    """The request for one conversation, from chat-completions-style messages and options."""
    instructions = [m["content"] for m in messages if m["role"] in ("system", "developer")]
    conversation = [m for m in messages if m["role"] not in ("system", "developer")]
    body: dict[str, Any] = {
        "input": [{"role": m["role"], "content": responses_content(m["content"])} for m in conversation]
    }
    if instructions:
        body["instructions"] = "\n\n".join(instructions)
    text: dict[str, Any] = {}
    for name, value in options.items():
        if name in RENAMED:
            body[RENAMED[name]] = value
        elif name == "response_format":
            text["format"] = _text_format(value)
        elif name == "reasoning_effort":
            body["reasoning"] = {"effort": value}
        elif name == "verbosity":
            text["verbosity"] = value
        elif name not in UNSUPPORTED:
            body[name] = value
    if text:
        body["text"] = text
    if model is not None:
        body["model"] = model
    return body


def _text_format(response_format: Mapping[str, Any]) -> dict[str, Any]:
    if response_format.get("type") == "json_schema":
        schema = response_format.get("json_schema") or {}
        return {"type": "json_schema", **schema}
    return dict(response_format)


UNFINISHED = frozenset({"in_progress", "queued"})


def parse_usage(usage: Any) -> Usage | None:
    if not isinstance(usage, Mapping):
        return None
    inputs, outputs = usage.get("input_tokens_details"), usage.get("output_tokens_details")
    return Usage(
        prompt_tokens=_count(usage.get("input_tokens")),
        completion_tokens=_count(usage.get("output_tokens")),
        total_tokens=_count(usage.get("total_tokens")),
        cached_tokens=_count(inputs.get("cached_tokens")) if isinstance(inputs, Mapping) else None,
        reasoning_tokens=_count(outputs.get("reasoning_tokens")) if isinstance(outputs, Mapping) else None,
    )


def _finish_reason(body: Mapping[str, Any]) -> str | None:
    """Chat's names for how the answer ended: ``stop``, ``length`` or ``content_filter``."""
    status = body.get("status")
    if status == "completed":
        return "stop"
    if status == "incomplete":
        details = body.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, Mapping) else None
        return "length" if reason == "max_output_tokens" else str(reason or "incomplete")
    return str(status) if isinstance(status, str) else None


def parse_answer(body: Any) -> Answer:
    """The answer of one response; a failed response or a refusal is a final error, a wrong shape retried."""
    if not isinstance(body, Mapping):
        raise MalformedResponseError(f"the response is a {type(body).__name__}, not an object")
    output = body.get("output")
    if not isinstance(output, list):
        raise MalformedResponseError("the response has no output list")
    usage, finish_reason = parse_usage(body.get("usage")), _finish_reason(body)
    if body.get("status") == "failed":
        error: Mapping[str, Any] = body["error"] if isinstance(body.get("error"), Mapping) else {}
        code = str(error.get("code") or "response_failed")
        return Answer(None, RowError(200, code, str(error.get("message") or "the response failed")), usage, None)
    texts: list[str] = []
    refusals: list[str] = []
    calls: list[str] = []
    for item in output:
        if not isinstance(item, Mapping):
            raise MalformedResponseError("an output item is not an object")
        if item.get("type") == "function_call":
            calls.append(str(item.get("name")))
        if item.get("type") != "message":
            continue
        content = item.get("content")
        if not isinstance(content, list):
            raise MalformedResponseError("a message output item has no content list")
        for part in content:
            if not isinstance(part, Mapping):
                raise MalformedResponseError("a content part of the response is not an object")
            if part.get("type") == "output_text":
                if not isinstance(part.get("text"), str):
                    raise MalformedResponseError("an output_text part has no text")
                texts.append(part["text"])
            elif part.get("type") == "refusal":
                refusals.append(str(part.get("refusal")))
    if texts and ("".join(texts).strip() or finish_reason != "length"):
        return Answer("".join(texts), None, usage, finish_reason)
    if refusals:
        return Answer(
            None, RowError(200, ErrorCode.REFUSAL, " ".join(refusals)[:MAX_MESSAGE_CHARS]), usage, finish_reason
        )
    if calls:
        message = f"the model answered with tool calls ({', '.join(calls)}), not text"
        return Answer(None, RowError(200, ErrorCode.TOOL_CALL, message), usage, finish_reason)
    if finish_reason == "content_filter":
        return Answer("", None, usage, finish_reason)
    if body.get("status") == "incomplete":
        return Answer(None, cut_short(f"status: incomplete, {finish_reason}"), usage, finish_reason)
    if body.get("status") in UNFINISHED:  # a background response: billed as it runs, never polled here
        message = f"the response is {body.get('status')}, with no text yet (background responses are not read)"
        return Answer(None, RowError(200, ErrorCode.INCOMPLETE, message), usage, finish_reason)
    kinds = {item.get("type") for item in output}
    if output and kinds <= {"reasoning"}:  # the model only reasoned: a known, billed shape, final
        message = f"the response holds only reasoning, no text (status {body.get('status')})"
        return Answer(None, RowError(200, ErrorCode.INCOMPLETE, message), usage, finish_reason)
    raise MalformedResponseError("the response has no output_text")
