"""Azure's error answers: one exception type carrying status, code and body, and the bodies Azure sends.

Every refusal the emulator makes is an :class:`ApiError`; the handler turns it into the status and the
``{"error": {"code", "message", ...}}`` body of Azure's OpenAPI ``errorResponse``.
"""

from __future__ import annotations

import math
from typing import Any

CATEGORIES = ("hate", "self_harm", "sexual", "violence")


class ApiError(Exception):
    """A refusal: ``status``, Azure's ``code`` and ``message``, extra ``error`` fields and extra headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.extra, self.headers = extra or {}, headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


def content_filter_result(filtered_category: str = "hate") -> dict[str, Any]:
    """Azure's per-category verdicts, with ``filtered_category`` (if any) filtered at high severity."""
    return {
        c: {"filtered": c == filtered_category, "severity": "high" if c == filtered_category else "safe"}
        for c in CATEGORIES
    }


def not_found() -> ApiError:
    return ApiError(404, "404", "Resource not found")


def bad_request(message: str, code: str = "BadRequest") -> ApiError:
    return ApiError(400, code, message)


def unauthorized() -> ApiError:
    return ApiError(
        401,
        "401",
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
        "valid key for an active subscription and use a correct regional API endpoint for your resource.",
    )


def content_filtered() -> ApiError:
    return ApiError(
        400,
        "content_filter",
        "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
        {
            "param": "prompt",
            "status": 400,
            "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": content_filter_result()},
        },
    )


def context_length_exceeded(limit: int, tokens: int, param: str = "messages") -> ApiError:
    return ApiError(
        400,
        "context_length_exceeded",
        f"This model's maximum context length is {limit} tokens, however you requested {tokens} tokens. "
        "Please reduce your prompt.",
        {"param": param, "type": "invalid_request_error"},
    )


def server_error(status: int) -> ApiError:
    return ApiError(
        status,
        "InternalServerError" if status == 500 else "ServiceUnavailable",
        "The server had an error while processing your request. Sorry about that!",
    )


def rate_limited(wait: float, whole_seconds: bool = False) -> ApiError:
    """Azure's 429 for a deployment over its requests- or tokens-per-minute budget, free again in ``wait`` s.

    ``whole_seconds``: only a ``Retry-After`` rounded up to whole seconds, no ``retry-after-ms`` (what
    Microsoft's aoai-api-simulator sends).
    """
    seconds = max(1, math.ceil(wait))
    headers = {"retry-after-ms": str(max(1, math.ceil(wait * 1000))), "retry-after": str(seconds)}
    return ApiError(
        429,
        "429",
        "Requests to the deployment have exceeded the rate limit of your current pricing tier. "
        f"Please retry after {seconds} second.",
        headers={"Retry-After": str(seconds)} if whole_seconds else headers,
    )


_OPERATIONS = {"chat": "ChatCompletions_Create", "embeddings": "Embeddings_Create", "responses": "Responses_Create"}


def quota_exceeded(route: str, api_version: str, retry_after: float) -> ApiError:
    """Azure's token-quota 429 (a deployment out of quota for a while): a long ``retry-after``, in seconds."""
    seconds = max(1, math.ceil(retry_after))
    return ApiError(
        429,
        "429",
        f"Requests to the {_OPERATIONS.get(route, 'Operation')} Operation under Azure OpenAI API version "
        f"{api_version or 'v1'} have exceeded token rate limit of your current AIServices S0 pricing tier, or "
        f"the quota of the deployment. Please retry after {seconds} seconds. Please contact Azure support "
        "service if you would like to further increase the default rate limit.",
        headers={"retry-after": str(seconds), "retry-after-ms": str(seconds * 1000)},
    )


def bare_throttled() -> ApiError:
    """A 429 that says nothing about when to come back: no ``retry-after`` or ``retry-after-ms`` header."""
    return ApiError(
        429,
        "429",
        "Requests to the deployment have exceeded the rate limit of your current pricing tier.",
    )


def capacity_exceeded(retry_after: float) -> ApiError:
    """Fabric's refusal when the workspace's capacity is used up: code ``CapacityLimitExceeded``.

    The shape is Azure's error body (what Fabric's OpenAI endpoint answers in), with Fabric's ``Retry-After``.
    """
    seconds = max(1, math.ceil(retry_after))
    return ApiError(
        429,
        "CapacityLimitExceeded",
        "Your Fabric capacity has reached its compute limit and requests are being throttled. "
        f"Please retry after {seconds} seconds, or scale up the capacity.",
        headers={"Retry-After": str(seconds)},
    )


def invalid(param: str, message: str, code: str = "invalid_value") -> ApiError:
    """A 400 for one parameter, in the OpenAI style Azure answers with: ``code``, ``param``, ``type``."""
    return ApiError(400, code, message, {"param": param, "type": "invalid_request_error"})


def deployment_not_found() -> ApiError:
    return ApiError(
        404,
        "DeploymentNotFound",
        "The API deployment for this resource does not exist. If you created the deployment within the last 5 "
        "minutes, please wait a moment and try again.",
    )


def operation_not_supported(operation: str, model: str) -> ApiError:
    return ApiError(
        400,
        "OperationNotSupported",
        f"The {operation} operation does not work with the specified model, {model}. Please choose different "
        "model and try again. You can learn more about which models can be used with each operation here: "
        "https://go.microsoft.com/fwlink/?linkid=2197993.",
    )


def no_such(kind: str, object_id: str) -> ApiError:
    """The Files and Batch APIs' 404 for an id they do not know (``kind`` is ``file`` or ``batch``)."""
    return ApiError(404, "NotFound", f"No {kind} with id '{object_id}' was found.", {"param": "id"})


def file_too_large(size: int, limit: int) -> ApiError:
    """An upload over the batch input limit: OpenAI's ``File is too large.``, with the sizes."""
    return invalid(
        "file",
        f"File is too large. It has {size:,} bytes; a batch input file may have at most {limit:,} bytes.",
        "invalid_request_error",
    )


def cannot_cancel(status: str) -> ApiError:
    return ApiError(409, "conflict", f"Cannot cancel a batch with status '{status}'.")
