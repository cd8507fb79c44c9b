"""A batch input file's validation: each line a request for the batch's endpoint, or the errors Azure reports.

A line is ``{"custom_id", "method": "POST", "url", "body"}``: ``custom_id`` unique in the file, ``url`` the
batch's endpoint (``/chat/completions`` and ``/v1/chat/completions`` are the same), ``body.model`` a deployment,
the same on every line. What fails is one ``errors.data`` entry ``{code, message, line, param}`` per problem
(line numbers from 1), with Azure's codes: ``empty_file``, ``too_many_tasks``, ``invalid_json_line``,
``invalid_request``, ``duplicate_custom_id``, ``url_mismatch``, ``model_not_found`` (a deployment the emulator
does not serve) and ``model_mismatch``; any of them fails the batch before a line is run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# the batch endpoints served, by route (Azure writes "/chat/completions", OpenAI "/v1/chat/completions")
ENDPOINTS = {"/chat/completions": "chat", "/embeddings": "embeddings", "/responses": "responses"}
# a file with thousands of bad lines reports the first ones
MAX_REPORTED_ERRORS = 100


@dataclass(frozen=True)
class Line:
    number: int
    custom_id: str
    body: dict[str, Any]


def route_of(endpoint: object) -> str | None:
    """The route a batch endpoint or line url names (``chat``, ``embeddings``, ``responses``), else None."""
    if not isinstance(endpoint, str):
        return None
    return ENDPOINTS.get(endpoint[3:] if endpoint.startswith("/v1/") else endpoint)


def error(code: str, message: str, line: int | None = None, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "line": line, "param": param}


def parse(
    data: bytes, route: str, max_lines: int, deployed: Callable[[str], bool]
) -> tuple[list[Line], list[dict[str, Any]]]:
    """(the requests, the errors): the requests are to be run only when there is no error."""
    texts = [(number, text) for number, text in enumerate(data.split(b"\n"), start=1) if text.strip()]
    if not texts:
        return [], [
            error("empty_file", "The input file is empty. Please ensure that the batch contains at least one request.")
        ]
    if len(texts) > max_lines:
        return [], [
            error(
                "too_many_tasks",
                f"The number of requests in the input file ({len(texts):,}) exceeds the maximum allowed value of "
                f"{max_lines:,}. Please ensure your total requests are under {max_lines:,} and resubmit the job.",
            )
        ]
    lines: list[Line] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    first_model: str | None = None
    for number, text in texts:
        problem = _check(number, text, route, seen, deployed)
        if isinstance(problem, dict):
            errors.append(problem)
            continue
        model = problem.body["model"]
        first_model = first_model or model
        if model != first_model:
            errors.append(
                error(
                    "model_mismatch",
                    f"The deployment '{model}' in the 'model' property of this request does not match the rest of "
                    f"the file ('{first_model}'). Please ensure that all requests in the batch point to the same "
                    "deployment.",
                    number,
                    "body.model",
                )
            )
        lines.append(problem)
    return lines, errors[:MAX_REPORTED_ERRORS]


def _check(
    number: int, text: bytes, route: str, seen: set[str], deployed: Callable[[str], bool]
) -> Line | dict[str, Any]:
    """The line as a request, or its first problem."""
    try:
        item = json.loads(text.decode("utf-8"))  # strictly UTF-8: Azure refuses a byte-order mark
    except (ValueError, UnicodeDecodeError):
        item = None
    if not isinstance(item, dict):
        bom = " (a UTF-8 byte-order mark is not supported)" if text.startswith(b"\xef\xbb\xbf") else ""
        return error(
            "invalid_json_line",
            f"Line {number} of the input file is not a valid JSON object{bom}. Please ensure no typos, proper "
            "opening and closing brackets, and quotes as per JSON standard, and resubmit the request.",
            number,
        )
    custom_id, body = item.get("custom_id"), item.get("body")
    if not isinstance(custom_id, str) or not custom_id:
        return error("invalid_request", "Each request needs a 'custom_id' string.", number, "custom_id")
    if custom_id in seen:
        return error(
            "duplicate_custom_id",
            f"The custom ID '{custom_id}' is a duplicate of the custom ID in another request.",
            number,
            "custom_id",
        )
    seen.add(custom_id)
    if item.get("method") != "POST":
        return error("invalid_request", "The 'method' of a request must be 'POST'.", number, "method")
    if route_of(item.get("url")) != route:
        return error(
            "url_mismatch",
            f"The url {item.get('url')!r} of this request does not match the batch's endpoint. Please ensure all "
            "request URLs are the same, and that they match the endpoint of the batch.",
            number,
            "url",
        )
    if not isinstance(body, dict):
        return error("invalid_request", "The 'body' of a request must be a JSON object.", number, "body")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return error(
            "invalid_request", "The 'body' of a request needs 'model', a deployment name.", number, "body.model"
        )
    if not deployed(model):
        return error(
            "model_not_found",
            f"The model deployment '{model}' specified in the 'model' property of the input file wasn't found. "
            "Please ensure this name points to a valid model deployment.",
            number,
            "body.model",
        )
    return Line(number, custom_id, body)
