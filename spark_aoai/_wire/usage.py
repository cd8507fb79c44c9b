"""What a 200 body says the service billed, whatever the API: the one place statistics and the spend cap read.

Chat completions and embeddings report ``usage.prompt_tokens`` / ``completion_tokens`` (their parser is
``_wire.chat.parse_usage``); the Responses API reports ``usage.input_tokens`` / ``output_tokens`` with
``input_tokens_details.cached_tokens`` and ``output_tokens_details.reasoning_tokens``: its operation should fill
its usage column with :func:`parse_responses_usage`, so the column and the job statistics agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spark_aoai._contract import Usage
from spark_aoai._wire.chat import parse_usage


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def parse_responses_usage(usage: Any) -> Usage | None:
    """Responses API usage as a ``Usage`` (input -> prompt, output -> completion).

    >>> parse_responses_usage({"input_tokens": 5, "output_tokens": 7, "total_tokens": 12,
    ...     "input_tokens_details": {"cached_tokens": 2}, "output_tokens_details": {"reasoning_tokens": 0}})
    Usage(prompt_tokens=5, completion_tokens=7, total_tokens=12, cached_tokens=2, reasoning_tokens=0)
    """
    if not isinstance(usage, Mapping):
        return None
    input_details = usage.get("input_tokens_details")
    input_details = input_details if isinstance(input_details, Mapping) else {}
    output_details = usage.get("output_tokens_details")
    output_details = output_details if isinstance(output_details, Mapping) else {}
    return Usage(
        prompt_tokens=_count(usage.get("input_tokens")),
        completion_tokens=_count(usage.get("output_tokens")),
        total_tokens=_count(usage.get("total_tokens")),
        cached_tokens=_count(input_details.get("cached_tokens")),
        reasoning_tokens=_count(output_details.get("reasoning_tokens")),
    )


def billed_usage(body: Any) -> Usage | None:
    """The usage a 200 body reports, for chat completions, embeddings and the Responses API alike."""
    usage = body.get("usage") if isinstance(body, Mapping) else None
    if not isinstance(usage, Mapping):
        return None
    if "input_tokens" in usage or "output_tokens" in usage:
        return parse_responses_usage(usage)
    return parse_usage(usage)
