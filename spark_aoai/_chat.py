"""Chat completions: request payloads from prompts or message lists, and the answer out of a response."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spark_aoai._http import ErrorInfo
from spark_aoai._partition import MalformedResponseError, RowResults, Unit, error_value
from spark_aoai._tokens import DEFAULT_COMPLETION_TOKENS, estimate_message_tokens

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


class InvalidInputError(ValueError):
    """A row's input cannot be sent; the message goes into the row's error value."""


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


@dataclass(frozen=True)
class ChatOperation:
    """Chat completions: one unit per row; ``options`` is merged into every request body."""

    deployment: str
    model_in_body: bool
    system_prompt: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    path: str = "chat/completions"
    extra_fields: tuple[str, ...] = ("usage", "finish_reason")

    def plan(self, items: Sequence[Any], results: RowResults) -> list[Unit]:
        units = []
        completion_budget = int(
            self.options.get("max_completion_tokens") or self.options.get("max_tokens") or DEFAULT_COMPLETION_TOKENS
        )
        for row, item in enumerate(items):
            try:
                messages = to_messages(item, self.system_prompt)
            except InvalidInputError as exc:
                results.fail([row], error_value(None, "invalid_input", str(exc)))
                continue
            payload: dict[str, Any] = {"messages": messages, **self.options}
            if self.model_in_body:
                payload["model"] = self.deployment
            units.append(Unit(results, [[row]], payload, estimate_message_tokens(messages) + completion_budget))
        return units

    def accept(self, unit: Unit, body: Any, request_id: str | None) -> None:
        try:
            choice = body["choices"][0]
            message = choice["message"]
            content = message.get("content")
            finish_reason = choice.get("finish_reason")
        except (KeyError, IndexError, TypeError) as exc:
            raise MalformedResponseError(f"the chat response has no choices[0].message ({exc!r})") from exc
        usage = body.get("usage") if isinstance(body, dict) else None
        extras = {
            "finish_reason": finish_reason,
            "usage": {
                "prompt_tokens": usage.get("prompt_tokens"),
                "completion_tokens": usage.get("completion_tokens"),
                "total_tokens": usage.get("total_tokens"),
            }
            if isinstance(usage, dict)
            else None,
        }
        if content is None and message.get("refusal"):
            unit.results.fail(
                unit.rows, error_value(200, "refusal", str(message["refusal"])[:2000], unit.attempts, request_id)
            )
            return
        if content is None and finish_reason != "content_filter":
            raise MalformedResponseError("the chat response's message has no content")
        unit.results.succeed(unit.rows, content if content is not None else "", extras)

    def split(self, unit: Unit, error: ErrorInfo) -> list[Unit]:
        return []
