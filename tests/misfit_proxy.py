"""A tiny HTTP proxy in front of the emulator that breaks some structured answers (used only while the
emulator on main has no such fault): not JSON, a field missing, a value of the wrong type, a label outside
the enum. Which answers break is a pure function of the request body, so a run is reproducible.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests


def broken(content: str, schema: dict[str, Any], digest: int) -> str:
    value = json.loads(content)
    key = next(iter(value))
    prop = (schema.get("properties") or {}).get(key) or {}
    kind = ("not_json", "missing_field", "wrong_type", "outside_enum")[digest % 4]
    if kind == "not_json":
        return "Sure! Here is the JSON: " + content[:-1]
    if kind == "missing_field":
        del value[key]
    elif kind == "outside_enum" and ("enum" in prop or "enum" in (prop.get("items") or {})):
        value[key] = "not-a-label" if "enum" in prop else ["not-a-label"]
    else:
        value[key] = 12345 if "string" in json.dumps(prop.get("type")) else "not a number"
    return json.dumps(value)


class MisfitProxy:
    """Forward to ``target``; break ``rate`` of the structured answers (by a hash of the request body)."""

    def __init__(self, target: str, rate: float) -> None:
        self.target, self.rate = target, rate
        self.broken_bodies: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = requests.post(proxy.target + self.path, data=raw, headers=headers, timeout=60)
                body = answer.content
                request = json.loads(raw)
                schema = ((request.get("response_format") or {}).get("json_schema") or {}).get("schema")
                digest = int(hashlib.sha256(raw).hexdigest(), 16)
                if answer.status_code == 200 and schema and (digest % 1000) < proxy.rate * 1000:
                    data = answer.json()
                    message = data["choices"][0]["message"]
                    message["content"] = broken(message["content"], schema, digest // 1000)
                    body = json.dumps(data).encode()
                    with proxy.lock:
                        proxy.broken_bodies.append(request)
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> MisfitProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def first_asks_broken(self) -> int:
        """Broken answers to first asks (a re-ask's messages end with the feedback in a system message)."""
        return sum(1 for r in self.broken_bodies if r["messages"][-1]["role"] != "system")
