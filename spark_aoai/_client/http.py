"""The one place that sends a request: a pooled session, a wall-clock limit per attempt, status -> error value.

``Transport.post`` makes exactly one attempt and never raises for what the service, the network or the
credential does: it returns an ``Outcome`` whose ``error`` is None on a parsed 200. Retrying is the caller's job.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter

from spark_aoai._client.auth import redact
from spark_aoai._client.config import ClientConfig
from spark_aoai._core import bounded_json as untrusted_json
from spark_aoai._core.constants import MAX_MESSAGE_CHARS
from spark_aoai._core.contract import ErrorCode, RowError

_READ_CHUNK = 1 << 16
JSON_CONTENT = {"Content-Type": "application/json"}


@dataclass
class Outcome:
    """The result of one attempt."""

    status: int | None
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    error: RowError | None = None
    request_id: str | None = None
    connect_failed: bool = False  # no connection could be opened (refused, DNS, connect timeout)


def error_from_response(status: int, text: str) -> RowError:
    """Map an HTTP error status and Azure's error body (``{"error": {"code", "message"}}``) to an error."""
    code, message = ErrorCode.HTTP_ERROR.value, text.strip()[:MAX_MESSAGE_CHARS] or f"HTTP {status}"
    try:
        body = untrusted_json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code = str(error.get("code") or error.get("type") or code)
        message = str(error.get("message") or message)[:MAX_MESSAGE_CHARS]
        inner = error.get("innererror") or error.get("inner_error")
        if isinstance(inner, dict) and isinstance(inner.get("content_filter_result"), dict):
            filtered = [
                k for k, v in inner["content_filter_result"].items() if isinstance(v, dict) and v.get("filtered")
            ]
            if filtered:
                message = f"{message} (filtered: {', '.join(filtered)})"
    return RowError(status, code, message)


def request_headers(config: ClientConfig) -> dict[str, str]:
    """The headers every call carries besides the credential's: the User-Agent and the configured ones."""
    return {"User-Agent": "spark-aoai", **{name: value.reveal() for name, value in config.headers}}


def clean_message(config: ClientConfig, message: str) -> str:
    """An error message fit for a row or a log: every secret of ``config`` masked, cut at MAX_MESSAGE_CHARS."""
    return redact(message, config.secrets())[:MAX_MESSAGE_CHARS]


def credential_error(config: ClientConfig, exc: Exception) -> RowError:
    """The error of a credential that raised: retried like any transient failure, unless it never produced a
    token (then the job fails, naming it)."""
    source = CREDENTIAL_SOURCES.get(config.credential.kind, "the credential")
    message = f"{source} could not produce a token: {type(exc).__name__}: {exc}"
    return RowError(None, ErrorCode.CREDENTIAL_ERROR, clean_message(config, message))


CREDENTIAL_SOURCES = {
    "token_provider": "the token provider (tokenProvider)",
    "fabric": "Fabric's token library (the notebook's built-in credential)",
}


class _AttemptTimeoutError(Exception):
    """The attempt's wall-clock limit passed while the body was still arriving."""


def _set_read_timeout(response: requests.Response, seconds: float) -> None:
    """Shorten the socket's per-read timeout to what is left of the attempt (best effort, urllib3 2)."""
    with contextlib.suppress(AttributeError):
        response.raw._fp.fp.raw._sock.settimeout(max(0.001, seconds))  # type: ignore[union-attr]


def _read_body(response: requests.Response, until: float) -> bytes:
    """The whole body, or ``_AttemptTimeoutError`` once ``until`` passes: a body trickling in byte by byte cannot
    outlast the attempt (the HTTP library's own timeout is per socket read)."""
    raw = response.raw
    if not hasattr(raw, "read1"):  # urllib3 < 2: no partial reads; the per-read timeout is all there is
        return response.content
    chunks: list[bytes] = []
    while True:
        left = until - time.monotonic()
        if left <= 0:
            raise _AttemptTimeoutError
        _set_read_timeout(response, left)
        chunk = raw.read1(_READ_CHUNK, decode_content=True)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _never_connected(exc: BaseException) -> bool:
    """Whether a connection error happened before any connection existed (refused, unknown host)."""
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, urllib3.exceptions.NewConnectionError):
            return True
        linked = [getattr(current, "reason", None), current.__cause__, current.__context__, *current.args[:1]]
        pending.extend(e for e in linked if isinstance(e, BaseException))
    return False


class Transport:
    """A ``requests.Session`` with a connection pool sized for ``pool_size`` requests in flight."""

    def __init__(self, config: ClientConfig, pool_size: int) -> None:
        self.config = config
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(4, pool_size), max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.verify = config.verify
        self.static_headers = request_headers(config)

    def post(self, url: str, payload: dict[str, Any], limit_seconds: float) -> Outcome:
        """One attempt, ended after ``limit_seconds`` of wall-clock time whatever the server does."""
        return self.request("POST", url, limit_seconds, data=json.dumps(payload), headers=JSON_CONTENT)

    def request(self, method: str, url: str, limit_seconds: float, stream: bool = False, **send: Any) -> Outcome:
        """One attempt of any call (``send``: requests' ``data``, ``files``, ``headers``); its JSON answer in
        ``body``, the whole within ``limit_seconds`` of wall-clock time. With ``stream`` a 2xx answer's body is
        left unread: ``body`` is the open ``requests.Response`` (the caller closes it), each read of it bounded
        by ``limit_seconds``, so a large download may take longer as long as bytes keep coming."""
        until = time.monotonic() + limit_seconds
        try:
            headers = {**send.pop("headers", {}), **self.static_headers, **self.config.credential.headers()}
        except Exception as exc:  # the token provider failed: retried, like any transient failure
            return Outcome(None, error=credential_error(self.config, exc))
        timeout = (min(self.config.limits.connect_timeout, limit_seconds), limit_seconds)
        response = None
        kept = False
        try:
            # verify is passed per request: requests lets REQUESTS_CA_BUNDLE override a session-level setting.
            response = self.session.request(
                method, url, headers=headers, timeout=timeout, verify=self.config.verify, stream=True, **send
            )
            if stream and 200 <= response.status_code < 300:
                kept = True
                return Outcome(response.status_code, body=response, headers=response.headers)
            content = _read_body(response, until)
        except requests.exceptions.SSLError as exc:
            return self._failed(ErrorCode.TLS_ERROR, f"TLS failed: {exc}")
        except (requests.ReadTimeout, _AttemptTimeoutError, TimeoutError, urllib3.exceptions.TimeoutError) as exc:
            return self._failed(ErrorCode.TIMEOUT, f"no complete answer within {limit_seconds:.1f} s ({exc!r})")
        except requests.ConnectTimeout as exc:
            outcome = self._failed(ErrorCode.TIMEOUT, f"could not connect within the connect timeout ({exc})")
            outcome.connect_failed = True
            return outcome
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            outcome = self._failed(ErrorCode.CONNECTION_ERROR, f"{type(exc).__name__}: {exc}")
            outcome.connect_failed = _never_connected(exc)
            return outcome
        except Exception as exc:  # anything else the stack raises is still an error value, never a crash
            return self._failed(ErrorCode.CLIENT_ERROR, f"{type(exc).__name__}: {exc}")
        finally:
            if response is not None and not kept:
                response.close()
        request_id = response.headers.get("apim-request-id") or response.headers.get("x-request-id")
        status = response.status_code
        if not 200 <= status < 300:
            error = error_from_response(status, content.decode("utf-8", "replace"))
            error = RowError(error.status, error.code, self._clean(error.message))
            return Outcome(status, headers=response.headers, error=error, request_id=request_id)
        try:
            body = untrusted_json.loads(content)
        except ValueError as exc:
            message = f"the service answered {status} with a body that is not usable JSON ({exc})"
            error = RowError(status, ErrorCode.MALFORMED_RESPONSE, self._clean(message))
            return Outcome(status, headers=response.headers, error=error, request_id=request_id)
        return Outcome(status, body=body, headers=response.headers, request_id=request_id)

    def _failed(self, code: ErrorCode, message: str) -> Outcome:
        return Outcome(None, error=RowError(None, code, self._clean(message)))

    def _clean(self, message: str) -> str:
        return clean_message(self.config, message)

    def close(self) -> None:
        self.session.close()
