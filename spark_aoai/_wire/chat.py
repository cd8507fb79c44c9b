"""Chat completions on the wire: messages for a row, the request body, and the answer out of a response."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spark_aoai._core.constants import MAX_MESSAGE_CHARS
from spark_aoai._core.contract import (
    ErrorCode,
    InvalidInputError,
    MalformedResponseError,
    Route,
    RowError,
    Usage,
)

ROUTE = Route("chat/completions")
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
TEXT_PART_TYPES = frozenset({"text", "output_text"})


@dataclass(frozen=True)
class Answer:
    """What one chat response says: the text, or a final error (refusal, tool call, cut short), and usage."""

    text: str | None
    error: RowError | None
    usage: Usage | None
    finish_reason: str | None


def _as_mapping(message: Any) -> Mapping[str, Any]:
    if isinstance(message, Mapping):
        return message
    if hasattr(message, "asDict"):
        return dict(message.asDict())
    raise InvalidInputError(f"a message must be a struct with role and content, got {type(message).__name__}")


def to_messages(item: Any, system_prompt: str | None) -> list[dict[str, Any]]:
    """The chat messages for one row: a prompt string, or a list of ``{role, content}`` structs."""
    if item is None:
        raise InvalidInputError("the prompt is null")
    if isinstance(item, str):
        if not item.strip():
            raise InvalidInputError("the prompt is empty")
        messages: list[dict[str, Any]] = [{"role": "user", "content": item}]
    elif isinstance(item, Sequence) or hasattr(item, "tolist"):
        raw = list(item.tolist() if hasattr(item, "tolist") else item)
        if not raw:
            raise InvalidInputError("the message list is empty")
        messages = []
        for position, message in enumerate(raw):
            if message is None:
                raise InvalidInputError(f"message {position} is null")
            fields = _as_mapping(message)
            role, content = fields.get("role"), fields.get("content")
            if role not in ROLES:
                raise InvalidInputError(f"message {position} has role {role!r}; expected one of {sorted(ROLES)}")
            if not isinstance(content, str) or not content.strip():
                raise InvalidInputError(f"message {position} has no content")
            messages.append({"role": role, "content": content})
    else:
        raise InvalidInputError(f"expected a prompt string or a list of messages, got {type(item).__name__}")
    if system_prompt and messages[0]["role"] not in ("system", "developer"):
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def build_body(messages: list[dict[str, Any]], options: Mapping[str, Any], model: str | None) -> dict[str, Any]:
    """The request body: the messages, the request options, and ``model`` where the route wants it."""
    body: dict[str, Any] = {"messages": messages, **options}
    if model is not None:
        body["model"] = model
    return body


def _count(value: Any) -> int | None:
    """A token count as reported, or None when it is not one a long column holds."""
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63
    return value if ok else None


def parse_usage(usage: Any) -> Usage | None:
    """Chat usage, with cached and reasoning tokens from the ``*_details`` objects when reported."""
    if not isinstance(usage, Mapping):
        return None
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    return Usage(
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
        total_tokens=_count(usage.get("total_tokens")),
        cached_tokens=_count(prompt_details.get("cached_tokens")) if isinstance(prompt_details, Mapping) else None,
        reasoning_tokens=_count(completion_details.get("reasoning_tokens"))
        if isinstance(completion_details, Mapping)
        else None,
    )


def content_text(content: Any) -> str | None:
    """The text of ``message.content``: a string, or a list of text parts joined; MalformedResponseError else."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, Mapping) or not isinstance(part.get("text"), str):
                raise MalformedResponseError("a content part of the chat answer has no text")
            if part.get("type", "text") in TEXT_PART_TYPES:
                texts.append(part["text"])
        return "".join(texts)
    raise MalformedResponseError(f"the chat answer's content is a {type(content).__name__}")


def parse_answer(body: Any) -> Answer:
    """One choice's answer. A valid 200 is final: refusals, tool calls and answers cut short (``finish_reason:
    length``) before any text are errors (not retried); a body without the expected shape raises
    ``MalformedResponseError`` (retried)."""
    if not isinstance(body, Mapping):
        raise MalformedResponseError(f"the chat response is a {type(body).__name__}, not an object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise MalformedResponseError("the chat response has no choices")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, Mapping):
        raise MalformedResponseError("the chat response has no choices[0].message")
    finish_reason = choice.get("finish_reason")
    finish_reason = finish_reason if isinstance(finish_reason, str) else None
    usage = parse_usage(body.get("usage"))
    text = content_text(message.get("content"))
    if text is None or (finish_reason == "length" and not text.strip()):
        # a reasoning model whose thinking used the whole budget answers content "" (or null): not an answer
        error = _empty_answer_error(message, finish_reason)
        if error is None:
            return Answer("", None, usage, finish_reason)
        return Answer(None, error, usage, finish_reason)
    return Answer(text, None, usage, finish_reason)


def cut_short(reason: str) -> RowError:
    """The ``incomplete`` error of a 200 cut short before any text (billed: the usage stays with the row)."""
    message = (
        f"the answer was cut short ({reason}) before any text: raise maxTokens (a reasoning model spends part of "
        "it thinking; or lower reasoningEffort)"
    )
    return RowError(200, ErrorCode.INCOMPLETE, message)


def _empty_answer_error(message: Mapping[str, Any], finish_reason: str | None) -> RowError | None:
    """Why a 200 without content is final; None for a filtered answer (an empty response, flagged)."""
    refusal = message.get("refusal")
    if refusal:
        return RowError(200, ErrorCode.REFUSAL, str(refusal)[:MAX_MESSAGE_CHARS])
    tool_calls = message.get("tool_calls")
    if isinstance(tool_calls, list) and tool_calls:
        names = [
            str((call.get("function") or {}).get("name"))
            for call in tool_calls
            if isinstance(call, Mapping) and isinstance(call.get("function"), Mapping)
        ]
        return RowError(
            200, ErrorCode.TOOL_CALL, f"the model answered with tool calls ({', '.join(names) or 'unnamed'}), not text"
        )
    if finish_reason == "content_filter":
        return None
    if finish_reason == "length":
        return cut_short("finish_reason: length")
    raise MalformedResponseError("the chat response's message has no content")
