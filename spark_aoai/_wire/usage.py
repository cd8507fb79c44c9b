"""What a 200 body says the service billed, whatever the API: the one place statistics and the spend cap read.

Chat completions and embeddings report ``usage.prompt_tokens`` / ``completion_tokens``; the Responses API
``usage.input_tokens`` / ``output_tokens``. Each wire module parses its own shape (the same parser fills the
usage column), and this picks the one that fits, so the column and the job statistics agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spark_aoai._core.contract import Usage
from spark_aoai._wire import chat as chat_wire
from spark_aoai._wire import responses as responses_wire


def billed_usage(body: Any) -> Usage | None:
    """The usage a 200 body reports, for chat completions, embeddings and the Responses API alike.

    >>> billed_usage({"usage": {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12}}).completion_tokens
    7
    """
    usage = body.get("usage") if isinstance(body, Mapping) else None
    if not isinstance(usage, Mapping):
        return None
    if "input_tokens" in usage or "output_tokens" in usage:
        return responses_wire.parse_usage(usage)
    return chat_wire.parse_usage(usage)
