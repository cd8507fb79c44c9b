"""The one place that sends a request: a pooled session, timeouts, and HTTP status -> error value.

``Transport.post`` makes exactly one attempt and never raises for what the service or the network does:
it returns an ``Outcome`` whose ``error`` is None on a parsed 200. Retrying is the caller's job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from spark_aoai._auth import redact
from spark_aoai._config import ClientConfig

MAX_MESSAGE_CHARS = 2000


@dataclass
class ErrorInfo:
    """Why an attempt failed: the HTTP status (None when no response came), a code and a message."""

    status: int | None
    code: str
    message: str


@dataclass
class Outcome:
    """The result of one attempt."""

    status: int | None
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    error: ErrorInfo | None = None
    request_id: str | None = None


def error_from_response(status: int, text: str) -> ErrorInfo:
    """Map an HTTP error status and Azure's error body (``{"error": {"code", "message"}}``) to an error."""
    code, message = f"http_{status}", text.strip()[:MAX_MESSAGE_CHARS] or f"HTTP {status}"
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code = str(error.get("code") or error.get("type") or code)
        message = str(error.get("message") or message)[:MAX_MESSAGE_CHARS]
        inner = error.get("innererror") or error.get("inner_error")
        if isinstance(inner, dict) and inner.get("content_filter_result"):
            filtered = [
                k for k, v in inner["content_filter_result"].items() if isinstance(v, dict) and v.get("filtered")
            ]
            if filtered:
                message = f"{message} (filtered: {', '.join(filtered)})"
    return ErrorInfo(status, code, message)


class Transport:
    """A ``requests.Session`` with a connection pool sized for ``pool_size`` requests in flight."""

    def __init__(self, config: ClientConfig, pool_size: int) -> None:
        self.config = config
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(4, pool_size), max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.verify = config.verify
        self.static_headers = {"Content-Type": "application/json", "User-Agent": "spark-aoai"}
        self.static_headers.update({name: value.reveal() for name, value in config.headers})

    def post(self, url: str, payload: dict[str, Any], read_timeout: float) -> Outcome:
        headers = {**self.static_headers, **self.config.credential.headers()}
        timeout = (self.config.limits.connect_timeout, read_timeout)
        try:
            # verify is passed per request: requests lets REQUESTS_CA_BUNDLE override a session-level setting.
            response = self.session.post(
                url, data=json.dumps(payload), headers=headers, timeout=timeout, verify=self.config.verify
            )
        except requests.exceptions.SSLError as exc:
            return Outcome(None, error=ErrorInfo(None, "tls_error", self._clean(f"TLS failed: {exc}")))
        except requests.Timeout as exc:
            return Outcome(None, error=ErrorInfo(None, "timeout", self._clean(f"request timed out: {exc}")))
        except requests.RequestException as exc:
            return Outcome(None, error=ErrorInfo(None, "connection_error", self._clean(f"{type(exc).__name__}: {exc}")))
        except Exception as exc:  # a credential provider failed, or similar: still an error value, not a crash
            return Outcome(None, error=ErrorInfo(None, "client_error", self._clean(f"{type(exc).__name__}: {exc}")))
        request_id = response.headers.get("apim-request-id") or response.headers.get("x-request-id")
        if response.status_code != 200:
            error = error_from_response(response.status_code, response.text)
            error.message = self._clean(error.message)
            return Outcome(response.status_code, headers=response.headers, error=error, request_id=request_id)
        try:
            body = response.json()
        except ValueError:
            error = ErrorInfo(200, "malformed_response", "the service answered 200 with a body that is not JSON")
            return Outcome(200, headers=response.headers, error=error, request_id=request_id)
        return Outcome(200, body=body, headers=response.headers, request_id=request_id)

    def _clean(self, message: str) -> str:
        return redact(message, self.config.secrets())[:MAX_MESSAGE_CHARS]

    def close(self) -> None:
        self.session.close()
