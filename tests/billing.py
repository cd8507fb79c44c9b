"""A recording proxy in front of the emulator: what the service billed, read from the 200 bodies it sent.

The emulator's stats count requests but not the tokens it billed, so the tests put this between the client
and the emulator: it forwards each request as it is, and adds up ``usage`` of every 200 body (chat,
embeddings and the Responses API) and the statuses, per route. It never parses anything for the client.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

TOKEN_KEYS = {
    "prompt_tokens": ("prompt_tokens", "input_tokens"),
    "completion_tokens": ("completion_tokens", "output_tokens"),
    "total_tokens": ("total_tokens",),
}


class BillingProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.lock = threading.Lock()
        self.billed: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.session = requests.Session()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = proxy.session.post(proxy.upstream + self.path, data=raw, headers=headers, timeout=60)
                proxy.record(self.path, answer.status_code, answer.content)
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def record(self, path: str, status: int, content: bytes) -> None:
        route = "embeddings" if "embeddings" in path else "responses" if "responses" in path else "chat"
        usage: dict[str, Any] = {}
        if status == 200:
            usage = json.loads(content).get("usage") or {}
        with self.lock:
            self.statuses[f"{route} {status}"] += 1
            for name, keys in TOKEN_KEYS.items():
                self.billed[name] += sum(usage.get(key, 0) for key in keys)

    def reset(self) -> None:
        with self.lock:
            self.billed.clear()
            self.statuses.clear()

    def __enter__(self) -> BillingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
