"""The emulator's HTTP server: Azure OpenAI's data-plane contract for chat completions, embeddings, responses,
and the Files and Batch APIs.

One ``ThreadingHTTPServer`` (a thread per keep-alive connection, so latency faults overlap like a real service),
a :class:`~spark_aoai.emulator._state.State` holding settings, rate-limit buckets and counters, and a handler
that routes by the path's suffix so any prefix works (an Azure resource, an API Management URL, Fabric's
``.../cognitive/openai``). Checks live in ``_validate``, answers in ``_answers`` and ``_responses``, refusals in
``_errors``, answer-changing faults in ``_faults``; ``_dispatch`` runs the checks and the answer of one request
(for the handler and for the batch worker of ``_batches``); ``_batch_api`` serves the Files and Batch routes.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from spark_aoai.emulator import _batch_api, _dispatch, _faults
from spark_aoai.emulator._batches import Batches
from spark_aoai.emulator._errors import (
    ApiError,
    bad_request,
    not_found,
    rate_limited,
    server_error,
    unauthorized,
)
from spark_aoai.emulator._files import FileStore
from spark_aoai.emulator._settings import Faults, Settings
from spark_aoai.emulator._state import State
from spark_aoai.emulator._tokencount import warm_up
from spark_aoai.emulator._validate import inputs_of

_DEPLOYMENT_ROUTE = re.compile(r"/openai/deployments/(?P<deployment>[^/]+)/(?P<op>chat/completions|embeddings)$")
_V1_ROUTE = re.compile(r"/v1/(?P<op>chat/completions|embeddings|responses)$")
_AZURE_RESPONSES_ROUTE = re.compile(r"/openai/(?P<op>responses)$")  # the deployment in the body, api-version
_TRICKLE_INTERVAL = 0.05
_ROUTES = {"chat/completions": "chat", "embeddings": "embeddings", "responses": "responses"}


class Handler(BaseHTTPRequestHandler):
    """Routes one request; the server's ``state`` holds everything that outlives it."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: EmulatorServer
    _status = 0  # the status sent, for --log-requests

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Quiet: a load test would otherwise print a line per request (``--log-requests`` prints its own)."""

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def _log(self, started: float) -> None:
        """One line: method, path (the query only with its api-version), status, milliseconds; no header."""
        if not self.server.log_requests:
            return
        parts = urlsplit(self.path)
        version = parse_qs(parts.query).get("api-version")
        shown = parts.path + (f"?api-version={quote(version[0], safe='')}" if version else "")
        elapsed = (time.perf_counter() - started) * 1000
        print(f"{self.command} {shown} {self._status} {elapsed:.1f}ms", flush=True)

    # -- plumbing -------------------------------------------------------------------------------------------

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        self._send_bytes(status, payload, headers)

    def _send_bytes(
        self,
        status: int,
        payload: bytes,
        headers: dict[str, str] | None = None,
        length: int | None = None,
        content_type: str = "application/json",
    ) -> None:
        """Send the status, headers and ``payload`` (the first part of a ``length``-byte body, if given)."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload) if length is None else length))
        request_id = str(uuid.uuid4())
        self.send_header("apim-request-id", request_id)
        self.send_header("x-request-id", request_id)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _timed(self, serve: Callable[[], None]) -> None:
        """Serve one request, then log it (``--log-requests``) whatever happened."""
        started, self._status = time.perf_counter(), 0
        with self.server.serving_lock:
            self.server.serving += 1
        try:
            try:
                serve()
            finally:
                self._log(started)
        finally:  # even when the log line cannot be printed: settle() must not wait for it
            with self.server.serving_lock:
                self.server.serving -= 1

    def do_GET(self) -> None:
        self._timed(self._get)

    def do_POST(self) -> None:
        self._timed(self._post)

    def do_DELETE(self) -> None:
        self._timed(self._delete)

    def _delete(self) -> None:
        parts = urlsplit(self.path)
        if not self._serve_batch_api(parts.path, parts.query, self._read_body()):
            self._send_json(404, not_found().body())

    def _get(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/_emulator/stats":
            with_inputs = parse_qs(parts.query).get("inputs", ["1"])[0] != "0"
            self._send_json(200, self.server.state.snapshot(with_inputs))
        elif parts.path == "/_emulator/health":
            self._send_json(200, {"status": "ok"})
        elif not self._serve_batch_api(parts.path, parts.query, b""):
            self._send_json(404, not_found().body())

    def _post(self) -> None:
        parts = urlsplit(self.path)
        raw = self._read_body()
        if parts.path in ("/_emulator/config", "/_emulator/reset"):
            try:
                self._check_auth()  # a CI emulator with a key is not reconfigured by whoever reaches its port
            except ApiError as error:
                self._send_json(error.status, error.body())
                return
        if parts.path == "/_emulator/config":
            try:
                settings = Settings.from_dict(json.loads(raw or b"{}"))
            except (ValueError, TypeError) as error:
                self._send_json(400, bad_request(f"Invalid emulator settings: {error}").body())
                return
            self.server.state.configure(settings)
            self._send_json(200, {"status": "ok"})
            return
        if parts.path == "/_emulator/reset":
            with self.server.state.lock:
                self.server.state.reset_stats()
            self._send_json(200, {"status": "ok"})
            return
        if not self._serve_batch_api(parts.path, parts.query, raw):
            self._serve_api(parts.path, parse_qs(parts.query), raw)

    def _serve_batch_api(self, path: str, query: str, raw: bytes) -> bool:
        """Serve a Files or Batch API call; False when ``path`` is none of their routes."""
        route = _batch_api.match(path)
        if route is None:
            return False
        try:
            self._check_auth()
            content_type = self.headers.get("Content-Type", "")
            reply = _batch_api.serve(self.server.batches, self.command, route, parse_qs(query), content_type, raw)
        except ApiError as error:
            self._send_json(error.status, error.body(), error.headers)
            return True
        self._send_bytes(reply.status, reply.payload, content_type=reply.content_type)
        return True

    # -- the API --------------------------------------------------------------------------------------------

    def _serve_api(self, path: str, query: dict[str, list[str]], raw: bytes) -> None:
        state = self.server.state
        route, inputs, deployment = "unknown", [], "unknown"
        rate_headers: dict[str, str] = {}
        state.count_request(path, self._auth_scheme(), [name.lower() for name in self.headers])
        try:
            route, deployment, body = self._route(path, query, raw)
            inputs = inputs_of(route, body)
            self._check_auth()
            settings = state.settings
            faults = settings.faults
            api_version = _dispatch.api_version_of(query, required=False)
            checked = _dispatch.check(settings, route, deployment, body, inputs, api_version)
            wait, rate_headers = state.admit(deployment, checked.tokens)
            if wait > 0:
                raise rate_limited(wait, settings.rate_limit.retry_after == "seconds")
            refusal = _faults.throttle(state, faults, route, api_version or "")
            if refusal is not None:
                raise refusal
            if self._inject_transport_faults(route, inputs, faults):
                return
            answer = _dispatch.respond(state, checked, faults)
        except ApiError as error:
            state.count(route, error.status, inputs, answered=False)
            if not rate_headers:  # refused before the limiter: report the budgets as they stand
                rate_headers = state.admit(deployment, 0, charge=False)[1]
            self._send_json(error.status, error.body(), {**rate_headers, **error.headers})
            return
        state.count(route, 200, inputs, answered=True)
        state.bill(answer)
        if isinstance(answer, dict) and any(_faults.marked(faults.deep_body_marker, text) for text in inputs):
            answer = _faults.deep_body(answer)
        if state.roll(faults.trickle_rate):
            self._send_trickle(answer, rate_headers, faults.trickle_seconds)
        else:
            self._send_json(200, answer, rate_headers)

    def _send_trickle(self, answer: Any, headers: dict[str, str], seconds: float) -> None:
        """Send the 200 body a few bytes at a time, a write every 50 ms, spread over ``seconds``."""
        payload = answer if isinstance(answer, bytes) else json.dumps(answer).encode("utf-8")
        writes = max(1, min(len(payload), int(seconds / _TRICKLE_INTERVAL)))
        size = -(-len(payload) // writes)
        self._send_bytes(200, payload[:size], headers, length=len(payload))
        for start in range(size, len(payload), size):
            time.sleep(_TRICKLE_INTERVAL)
            self.wfile.write(payload[start : start + size])
            self.wfile.flush()

    def _route(self, path: str, query: dict[str, list[str]], raw: bytes) -> tuple[str, str, dict[str, Any]]:
        """(route, deployment, body): the deployment from the path, or from ``model`` on body-routed paths."""
        match = _DEPLOYMENT_ROUTE.search(path)
        in_body = None if match else (_V1_ROUTE.search(path) or _AZURE_RESPONSES_ROUTE.search(path))
        doubled = path.count("/openai/deployments/") > (1 if match else 0)  # an endpoint pasted with its path
        if (not match and not in_body) or doubled:
            raise not_found()
        _dispatch.api_version_of(query, bool(match) or (in_body is not None and in_body.re is _AZURE_RESPONSES_ROUTE))
        try:
            body = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            raise bad_request("The request body is not a valid JSON object.")
        if match:
            op, deployment = match["op"], match["deployment"]
        else:
            assert in_body is not None
            op, deployment = in_body["op"], str(body.get("model") or "")
            if not deployment:
                raise bad_request("Missing required parameter: 'model'.")
        return _ROUTES[op], deployment, body

    def _auth_scheme(self) -> str:
        if self.headers.get("api-key"):
            return "api-key"
        authorization = self.headers.get("Authorization", "")
        return authorization.split(" ", 1)[0].lower() if authorization else "none"

    def _check_auth(self) -> None:
        expected = self.server.state.settings.api_key
        if expected is None:
            return
        scheme, _, credential = self.headers.get("Authorization", "").partition(" ")
        given = self.headers.get("api-key") or (credential if scheme.lower() in ("bearer", "mwctoken") else None)
        if given != expected:
            raise unauthorized()

    def _inject_transport_faults(self, route: str, inputs: list[str], faults: Faults) -> bool:
        """Apply latency and transport faults; True when the response was already dealt with."""
        state = self.server.state
        delay = faults.latency_ms / 1000.0
        if delay and faults.jitter:
            delay *= 1.0 + state.uniform(-faults.jitter, faults.jitter)
        if state.roll(faults.slow_rate):
            delay = max(delay, faults.slow_seconds)
        if delay > 0:
            time.sleep(delay)
        if state.roll(faults.drop_rate):
            state.count(route, 0, inputs, answered=False)
            self.close_connection = True
            return True
        for status, rate in ((500, faults.error_500_rate), (503, faults.error_503_rate)):
            if state.roll(rate):
                raise server_error(status)
        if state.roll(faults.malformed_rate):
            state.count(route, -200, inputs, answered=False)
            self._send_bytes(200, b'{"id": "chatcmpl-malformed", "choices": [{"message": ')
            return True
        return False


class EmulatorServer(ThreadingHTTPServer):
    """A threading HTTP server that carries the emulator's state."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(
        self,
        address: tuple[str, int],
        settings: Settings,
        tls: tuple[str, str] | None = None,
        log_requests: bool = False,
    ) -> None:
        self.state = State(settings)
        self.files = FileStore()
        self.batches = Batches(self.state, self.files)  # before binding: a failed bind calls server_close
        super().__init__(address, Handler)
        self.log_requests = log_requests
        self.serving, self.serving_lock = 0, threading.Lock()  # requests being answered (and logged)
        warm_up()  # build the vocabularies now, not on the first request
        if tls is not None:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile=tls[0], keyfile=tls[1])
            self.socket = context.wrap_socket(self.socket, server_side=True)

    def settle(self, seconds: float) -> None:
        """Give the requests being answered up to ``seconds`` to finish (and print their log line)."""
        until = time.monotonic() + seconds
        while self.serving and time.monotonic() < until:
            time.sleep(0.01)

    def server_close(self) -> None:
        self.batches.close()
        super().server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that time out and hang up are part of the job; anything else is still printed."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)
