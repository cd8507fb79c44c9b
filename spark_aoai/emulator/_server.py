"""The emulator's HTTP server: Azure OpenAI's data-plane contract for chat completions and embeddings.

One ``ThreadingHTTPServer`` (a thread per keep-alive connection, so latency faults overlap like a real service),
a ``State`` holding settings, rate-limit buckets and counters, and a handler that routes by the path's suffix so
any prefix works (an Azure resource, an API Management URL, Fabric's ``.../cognitive/openai``).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import random
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from spark_aoai._tokens import DEFAULT_COMPLETION_TOKENS, estimate_message_tokens, estimate_tokens
from spark_aoai.emulator._model import (
    chat_reply,
    embed_texts,
    embedding_dimensions,
    message_text,
    structured_reply,
)

MAX_EMBEDDING_INPUTS = 2048
# Azure always reports its budgets; with a budget switched off the emulator reports this much left, unchanging.
UNLIMITED_HEADERS = {"x-ratelimit-remaining-requests": "1000000", "x-ratelimit-remaining-tokens": "1000000000"}

_DEPLOYMENT_ROUTE = re.compile(r"/openai/deployments/(?P<deployment>[^/]+)/(?P<op>chat/completions|embeddings)$")
_V1_ROUTE = re.compile(r"/v1/(?P<op>chat/completions|embeddings|responses)$")


@dataclass
class RateLimit:
    """Azure-like budgets per deployment, refilled continuously and evaluated over ``window_seconds``.

    ``requests_per_minute=2400, window_seconds=1`` allows 40 requests/s with a burst of one second's worth.
    """

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    window_seconds: float = 1.0


@dataclass
class Faults:
    """Faults the emulator injects; all off by default. Rates are probabilities per request."""

    latency_ms: float = 0.0
    jitter: float = 0.0
    error_500_rate: float = 0.0
    error_503_rate: float = 0.0
    drop_rate: float = 0.0
    malformed_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 30.0
    content_filter_marker: str | None = None
    finish_content_filter_marker: str | None = None
    context_length_marker: str | None = None
    max_input_tokens: int | None = None
    shuffle_embeddings: bool = False
    seed: int | None = None


@dataclass
class Settings:
    """Everything that shapes the emulator's answers; replaced whole by ``/_emulator/config``."""

    api_key: str | None = None
    rate_limit: RateLimit = field(default_factory=RateLimit)
    faults: Faults = field(default_factory=Faults)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        return cls(
            api_key=data.get("api_key"),
            rate_limit=RateLimit(**(data.get("rate_limit") or {})),
            faults=Faults(**(data.get("faults") or {})),
        )


class _Bucket:
    """A token bucket: ``capacity`` units, refilled at ``rate`` units per second."""

    def __init__(self, per_minute: float, window_seconds: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * window_seconds)
        self.level = self.capacity
        self.updated = time.monotonic()

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def wait_for(self, cost: float) -> float:
        """Seconds until ``cost`` units are available (0 when they are now)."""
        missing = min(cost, self.capacity) - self.level
        return 0.0 if missing <= 0 else missing / self.rate


class State:
    """Settings, rate-limit buckets and the counters tests read, behind one lock."""

    def __init__(self, settings: Settings) -> None:
        self.lock = threading.Lock()
        self.settings = settings
        self.random = random.Random(settings.faults.seed)
        self.buckets: dict[tuple[str, str], _Bucket] = {}
        self.reset_stats()

    def reset_stats(self) -> None:
        self.requests: Counter[str] = Counter()
        self.inputs: Counter[str] = Counter()
        self.answered_inputs: Counter[str] = Counter()
        self.input_counts: list[int] = []
        self.paths: Counter[str] = Counter()
        self.auth: Counter[str] = Counter()
        self.headers: Counter[str] = Counter()
        self.admitted_tokens = 0
        self.answers_per_second: Counter[int] = Counter()
        self.throttled_per_second: Counter[int] = Counter()
        self.first_request_at: float | None = None
        self.last_answer_at: float | None = None

    def configure(self, settings: Settings) -> None:
        with self.lock:
            self.settings = settings
            self.random = random.Random(settings.faults.seed)
            self.buckets = {}

    def roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self.lock:
            return self.random.random() < rate

    def admit(self, deployment: str, tokens: int, charge: bool = True) -> tuple[float, dict[str, str]]:
        """Charge one request and ``tokens``; return (seconds to wait, 0 if admitted) and rate headers.

        With ``charge=False`` only the headers are wanted (a request refused before it reached the limiter).
        """
        limit = self.settings.rate_limit
        headers: dict[str, str] = {}
        now = time.monotonic()
        with self.lock:
            charges: list[tuple[_Bucket, float, str]] = []
            if limit.requests_per_minute:
                bucket = self._bucket(deployment, "requests", limit.requests_per_minute, limit.window_seconds)
                charges.append((bucket, 1.0, "requests"))
            if limit.tokens_per_minute:
                bucket = self._bucket(deployment, "tokens", limit.tokens_per_minute, limit.window_seconds)
                charges.append((bucket, float(tokens), "tokens"))
            wait = 0.0
            for bucket, cost, _ in charges:
                bucket.refill(now)
                wait = max(wait, bucket.wait_for(cost))
            if wait == 0.0 and charge:
                self.admitted_tokens += tokens
                for bucket, cost, _ in charges:
                    bucket.level -= min(cost, bucket.capacity)
            for bucket, _, name in charges:
                headers[f"x-ratelimit-remaining-{name}"] = str(max(0, int(bucket.level)))
                headers[f"x-ratelimit-limit-{name}"] = str(int(bucket.capacity))
        return wait, {**UNLIMITED_HEADERS, **headers}

    def _bucket(self, deployment: str, kind: str, per_minute: float, window: float) -> _Bucket:
        key = (deployment, kind)
        if key not in self.buckets:
            self.buckets[key] = _Bucket(per_minute, window)
        return self.buckets[key]

    def count_request(self, path: str, auth: str, header_names: list[str]) -> None:
        with self.lock:
            if self.first_request_at is None:
                self.first_request_at = time.time()
            self.paths[path] += 1
            self.auth[auth] += 1
            self.headers.update(header_names)

    def count(self, route: str, status: int, inputs: list[str], answered: bool) -> None:
        with self.lock:
            self.requests[f"{route} {status}"] += 1
            self.inputs.update(inputs)
            self.input_counts.append(len(inputs))
            self.last_answer_at = time.time()
            if answered:
                self.answers_per_second[int(self.last_answer_at)] += 1
                self.answered_inputs.update(inputs)
            elif status == 429:
                self.throttled_per_second[int(self.last_answer_at)] += 1

    def snapshot(self, with_inputs: bool = True) -> dict[str, Any]:
        with self.lock:
            snap: dict[str, Any] = {
                "requests": dict(self.requests),
                "inputs_per_request": list(self.input_counts) if with_inputs else [],
                "paths": dict(self.paths),
                "admitted_tokens": self.admitted_tokens,
                "first_request_at": self.first_request_at,
                "last_answer_at": self.last_answer_at,
                "answers_per_second": {str(k): v for k, v in sorted(self.answers_per_second.items())},
                "throttled_per_second": {str(k): v for k, v in sorted(self.throttled_per_second.items())},
                "auth": dict(self.auth),
                "headers": dict(self.headers),
            }
            if with_inputs:
                snap["inputs"] = dict(self.inputs)
                snap["answered_inputs"] = dict(self.answered_inputs)
            return snap


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


def _content_filter_result(filtered_category: str = "hate") -> dict[str, Any]:
    categories = ("hate", "self_harm", "sexual", "violence")
    return {
        c: {"filtered": c == filtered_category, "severity": "high" if c == filtered_category else "safe"}
        for c in categories
    }


class Handler(BaseHTTPRequestHandler):
    """Routes one request; the server's ``state`` holds everything that outlives it."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: EmulatorServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Quiet: a load test would otherwise print a line per request."""

    # -- plumbing -------------------------------------------------------------------------------------------

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        self._send_bytes(status, payload, headers)

    def _send_bytes(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        request_id = str(uuid.uuid4())
        self.send_header("apim-request-id", request_id)
        self.send_header("x-request-id", request_id)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/_emulator/stats":
            with_inputs = parse_qs(parts.query).get("inputs", ["1"])[0] != "0"
            self._send_json(200, self.server.state.snapshot(with_inputs))
        elif parts.path == "/_emulator/health":
            self._send_json(200, {"status": "ok"})
        else:
            self._send_json(404, {"error": {"code": "404", "message": "Resource not found"}})

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        raw = self._read_body()
        if parts.path == "/_emulator/config":
            self.server.state.configure(Settings.from_dict(json.loads(raw or b"{}")))
            self._send_json(200, {"status": "ok"})
            return
        if parts.path == "/_emulator/reset":
            with self.server.state.lock:
                self.server.state.reset_stats()
            self._send_json(200, {"status": "ok"})
            return
        self._serve_api(parts.path, parse_qs(parts.query), raw)

    # -- the API --------------------------------------------------------------------------------------------

    def _serve_api(self, path: str, query: dict[str, list[str]], raw: bytes) -> None:
        state = self.server.state
        route, inputs, deployment = "unknown", [], "unknown"
        rate_headers: dict[str, str] = {}
        state.count_request(path, self._auth_scheme(), [name.lower() for name in self.headers])
        try:
            route, deployment, body = self._route(path, query, raw)
            inputs = self._inputs(route, body)
            self._check_auth()
            tokens = self._validate(route, body, inputs)
            wait, rate_headers = state.admit(deployment, tokens)
            if wait > 0:
                rate_headers = {
                    **rate_headers,
                    "retry-after-ms": str(max(1, math.ceil(wait * 1000))),
                    "retry-after": str(max(1, math.ceil(wait))),
                }
                raise _ApiError(
                    429,
                    "429",
                    "Requests to the deployment have exceeded the rate limit of your current pricing tier. "
                    f"Please retry after {max(1, math.ceil(wait))} second.",
                )
            if self._inject_transport_faults(route, inputs):
                return
            answer = self._answer(route, deployment, body, inputs, tokens)
        except _ApiError as error:
            state.count(route, error.status, inputs, answered=False)
            if not rate_headers:  # refused before the limiter: report the budgets as they stand
                rate_headers = state.admit(deployment, 0, charge=False)[1]
            self._send_json(error.status, error.body(), rate_headers)
            return
        state.count(route, 200, inputs, answered=True)
        self._send_json(200, answer, rate_headers)

    def _route(self, path: str, query: dict[str, list[str]], raw: bytes) -> tuple[str, str, dict[str, Any]]:
        match = _DEPLOYMENT_ROUTE.search(path)
        v1 = None if match else _V1_ROUTE.search(path)
        if not match and not v1:
            raise _ApiError(404, "404", "Resource not found")
        if match and not query.get("api-version"):
            raise _ApiError(400, "BadRequest", "Missing required query parameter 'api-version'. Please specify one.")
        try:
            body = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            raise _ApiError(400, "BadRequest", "The request body is not a valid JSON object.")
        if match:
            op, deployment = match["op"], match["deployment"]
        else:
            assert v1 is not None
            op, deployment = v1["op"], str(body.get("model") or "")
            if not deployment:
                raise _ApiError(400, "BadRequest", "Missing required parameter: 'model'.")
        route = {"chat/completions": "chat", "embeddings": "embeddings", "responses": "responses"}[op]
        return route, deployment, body

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
            raise _ApiError(
                401,
                "401",
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
                "valid key for an active subscription and use a correct regional API endpoint for your resource.",
            )

    @staticmethod
    def _inputs(route: str, body: dict[str, Any]) -> list[str]:
        if route == "embeddings":
            raw = body.get("input")
            items = raw if isinstance(raw, list) else [raw]
            return [item if isinstance(item, str) else json.dumps(item) for item in items]
        if route == "chat":
            messages = body.get("messages")
            if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
                return [message_text(messages[-1].get("content"))]
            return []
        text = body.get("input")
        return [text if isinstance(text, str) else json.dumps(text)]

    def _validate(self, route: str, body: dict[str, Any], inputs: list[str]) -> int:
        """Reject what Azure rejects; return the request's token cost for the rate limit."""
        faults = self.server.state.settings.faults
        if route == "embeddings":
            raw = body.get("input")
            if raw is None or raw == "" or raw == [] or any(i == "" for i in inputs):
                raise _ApiError(400, "invalid_request_error", "'$.input' is invalid. Please check the API reference.")
            if len(inputs) > MAX_EMBEDDING_INPUTS:
                raise _ApiError(
                    400,
                    "invalid_request_error",
                    f"Too many inputs. The max number of inputs is {MAX_EMBEDDING_INPUTS}.",
                )
        elif route == "chat":
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
                raise _ApiError(400, "BadRequest", "'messages' must be a non-empty array of message objects.")
            prompt = estimate_message_tokens(messages)
            completion = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_COMPLETION_TOKENS
            cost = prompt + int(completion)
            inputs_text = " ".join(message_text(m.get("content")) for m in messages)
            self._check_content(inputs_text, prompt, faults)
            return cost
        counts = [estimate_tokens(text) for text in inputs]
        for text, count in zip(inputs, counts, strict=True):
            self._check_content(text, count, faults)
        return sum(counts) + (0 if route == "embeddings" else DEFAULT_COMPLETION_TOKENS)

    @staticmethod
    def _check_content(text: str, tokens: int, faults: Faults) -> None:
        if faults.content_filter_marker and faults.content_filter_marker in text:
            raise _ApiError(
                400,
                "content_filter",
                "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
                {
                    "param": "prompt",
                    "status": 400,
                    "innererror": {
                        "code": "ResponsibleAIPolicyViolation",
                        "content_filter_result": _content_filter_result(),
                    },
                },
            )
        too_long = faults.max_input_tokens is not None and tokens > faults.max_input_tokens
        if too_long or (faults.context_length_marker and faults.context_length_marker in text):
            limit = faults.max_input_tokens or 8192
            raise _ApiError(
                400,
                "context_length_exceeded",
                f"This model's maximum context length is {limit} tokens, however you requested {tokens} tokens. "
                "Please reduce your prompt.",
                {"param": "messages", "type": "invalid_request_error"},
            )

    def _inject_transport_faults(self, route: str, inputs: list[str]) -> bool:
        """Apply latency and transport faults; True when the response was already dealt with."""
        state = self.server.state
        faults = state.settings.faults
        delay = faults.latency_ms / 1000.0
        if delay and faults.jitter:
            with state.lock:
                delay *= 1.0 + state.random.uniform(-faults.jitter, faults.jitter)
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
                raise _ApiError(
                    status,
                    "InternalServerError" if status == 500 else "ServiceUnavailable",
                    "The server had an error while processing your request. Sorry about that!",
                )
        if state.roll(faults.malformed_rate):
            state.count(route, -200, inputs, answered=False)
            self._send_bytes(200, b'{"id": "chatcmpl-malformed", "choices": [{"message": ')
            return True
        return False

    # -- answers --------------------------------------------------------------------------------------------

    def _answer(
        self, route: str, deployment: str, body: dict[str, Any], inputs: list[str], tokens: int
    ) -> dict[str, Any] | bytes:
        """The 200 body; ``tokens`` is what ``_validate`` counted (an embeddings request's usage)."""
        if route == "embeddings":
            return self._embeddings(deployment, body, inputs, tokens)
        if route == "chat":
            return self._chat(deployment, body)
        return self._responses(deployment, body)

    def _chat(self, deployment: str, body: dict[str, Any]) -> dict[str, Any]:
        messages = body["messages"]
        faults = self.server.state.settings.faults
        text = " ".join(message_text(m.get("content")) for m in messages)
        response_format = body.get("response_format") or {}
        filtered = bool(faults.finish_content_filter_marker and faults.finish_content_filter_marker in text)
        if filtered:
            content, finish = "", "content_filter"
        elif response_format.get("type") in ("json_object", "json_schema"):
            content, finish = structured_reply(messages, response_format), "stop"
        else:
            content, finish = chat_reply(messages), "stop"
        prompt_tokens = estimate_message_tokens(messages)
        completion_tokens = estimate_tokens(content)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": deployment,
            "system_fingerprint": "fp_emulator",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": _content_filter_result("")}],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": finish,
                    "logprobs": None,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "content_filter_results": _content_filter_result("hate" if filtered else ""),
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _embeddings(
        self, deployment: str, body: dict[str, Any], inputs: list[str], tokens: int
    ) -> dict[str, Any] | bytes:
        model = str(body.get("model") or deployment)
        dimensions = embedding_dimensions(model, body.get("dimensions"))
        vectors = embed_texts(inputs, dimensions)
        order = list(range(len(inputs)))
        if self.server.state.settings.faults.shuffle_embeddings:
            with self.server.state.lock:
                self.server.state.random.shuffle(order)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        if body.get("encoding_format") == "base64":
            # Built as bytes: base64 needs no JSON escaping, and json.dumps of megabytes would dominate.
            little_endian = vectors.astype("<f4", copy=False)
            items = b",".join(
                b'{"object":"embedding","index":%d,"embedding":"%s"}'
                % (index, base64.b64encode(little_endian[index].tobytes()))
                for index in order
            )
            head = json.dumps({"object": "list", "model": model, "usage": usage})[:-1].encode()
            return head + b',"data":[' + items + b"]}"
        data = [{"object": "embedding", "index": i, "embedding": vectors[i].tolist()} for i in order]
        return {"object": "list", "model": model, "data": data, "usage": usage}

    def _responses(self, deployment: str, body: dict[str, Any]) -> dict[str, Any]:
        """Enough of the Responses API for clients that send text and read ``output_text``."""
        raw = body.get("input")
        if isinstance(raw, str):
            messages = [{"role": "user", "content": raw}]
        else:
            messages = [m for m in (raw or []) if isinstance(m, dict)]
        text_format = (body.get("text") or {}).get("format") or {}
        if text_format.get("type") == "json_schema":
            content = structured_reply(messages, {"type": "json_schema", "json_schema": text_format})
        else:
            content = chat_reply(messages)
        prompt_tokens = estimate_message_tokens(messages)
        completion_tokens = estimate_tokens(content)
        return {
            "id": f"resp_{uuid.uuid4().hex}",
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": deployment,
            "output": [
                {
                    "type": "message",
                    "id": f"msg_{uuid.uuid4().hex}",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": content, "annotations": []}],
                }
            ],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": prompt_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": completion_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


class EmulatorServer(ThreadingHTTPServer):
    """A threading HTTP server that carries the emulator's state."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], settings: Settings, tls: tuple[str, str] | None = None) -> None:
        super().__init__(address, Handler)
        self.state = State(settings)
        if tls is not None:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile=tls[0], keyfile=tls[1])
            self.socket = context.wrap_socket(self.socket, server_side=True)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that time out and hang up are part of the job; anything else is still printed."""
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def settings_to_dict(settings: Settings) -> dict[str, Any]:
    """The JSON form ``/_emulator/config`` takes."""
    return dataclasses.asdict(settings)
