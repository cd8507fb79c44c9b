"""Faults for the client's reliability tests, each over real HTTP: other 429s, trickling bodies, odd answers."""

from __future__ import annotations

import base64
import json
import socket
import time

import jsonschema
import numpy as np
import openai
import pytest
import requests

from spark_aoai.emulator import Faults, chat_reply, embed_text
from spark_aoai.emulator._model import structured_reply
from tests.openapi import component, validate

API_VERSION = "2024-10-21"
CHAT = {"messages": [{"role": "user", "content": "Is the parcel late?"}]}
SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["late", "on time"]},
        "days": {"type": "integer"},
        "note": {"type": "string"},
    },
    "required": ["label", "days", "note"],
    "additionalProperties": False,
}
STRUCTURED = {
    **CHAT,
    "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": SCHEMA, "strict": True}},
}


def post(url: str, body: object, timeout: float = 10) -> requests.Response:
    return requests.post(url, data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=timeout)


def chat_url(endpoint: str) -> str:
    return f"{endpoint}/openai/deployments/gpt-4o/chat/completions?api-version={API_VERSION}"


def emb_url(endpoint: str) -> str:
    return f"{endpoint}/openai/deployments/text-embedding-3-small/embeddings?api-version={API_VERSION}"


def test_quota_429_has_a_long_retry_after(emulator):
    emulator.configure(faults=Faults(quota_429_rate=1.0, quota_retry_after_seconds=86400))
    response = post(chat_url(emulator.endpoint), CHAT)
    assert response.status_code == 429
    validate(response.json(), component("errorResponse"))
    assert response.json()["error"]["code"] == "429"
    assert "exceeded token rate limit" in response.json()["error"]["message"]
    assert "86400 seconds" in response.json()["error"]["message"]
    assert response.headers["retry-after"] == "86400"
    assert response.headers["retry-after-ms"] == "86400000"
    assert emulator.stats()["requests"] == {"chat 429": 1}


def test_bare_429_has_no_retry_headers(emulator):
    emulator.configure(faults=Faults(bare_429_rate=1.0))
    response = post(emb_url(emulator.endpoint), {"input": "x"})
    assert response.status_code == 429
    validate(response.json(), component("errorResponse"))
    assert not {"retry-after", "retry-after-ms"} & {name.lower() for name in response.headers}


def test_fabric_capacity_429(emulator):
    emulator.configure(faults=Faults(capacity_429_rate=1.0, capacity_retry_after_seconds=7))
    response = post(chat_url(emulator.endpoint), CHAT)
    assert response.status_code == 429
    validate(response.json(), component("errorResponse"))
    assert response.json()["error"]["code"] == "CapacityLimitExceeded"
    assert response.headers["Retry-After"] == "7"
    with pytest.raises(openai.RateLimitError) as caught:
        client = openai.AzureOpenAI(
            azure_endpoint=emulator.endpoint, api_key="k", api_version=API_VERSION, max_retries=0
        )
        client.chat.completions.create(model="gpt-4o", messages=CHAT["messages"])
    assert caught.value.code == "CapacityLimitExceeded"


def test_rates_mix_by_seed(emulator):
    emulator.configure(faults=Faults(quota_429_rate=0.3, bare_429_rate=0.3, seed=5))
    statuses = [post(chat_url(emulator.endpoint), CHAT).status_code for _ in range(40)]
    assert 10 < statuses.count(429) < 35 and statuses.count(200) > 5


def test_trickled_body_arrives_whole_without_a_read_timing_out(emulator):
    emulator.configure(faults=Faults(trickle_rate=1.0, trickle_seconds=1.5))
    started = time.monotonic()
    response = requests.post(chat_url(emulator.endpoint), json=CHAT, timeout=(5, 0.5), stream=True)
    chunks, gaps, last = [], [], time.monotonic()
    for chunk in response.iter_content(chunk_size=8):
        now = time.monotonic()
        chunks.append(chunk)
        gaps.append(now - last)
        last = now
    elapsed = time.monotonic() - started
    body = json.loads(b"".join(chunks))
    assert body["choices"][0]["message"]["content"] == chat_reply(CHAT["messages"])
    assert elapsed > 1.2, elapsed  # spread over the configured time
    assert len(chunks) > 10 and max(gaps) < 0.5  # a few bytes at a time, no gap near the read timeout
    # a total deadline is what catches it: a client with one is stopped well before the body is complete
    emulator.configure(faults=Faults(trickle_rate=1.0, trickle_seconds=3))
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=0.5) as sock:
        raw = json.dumps(CHAT).encode()
        sock.sendall(
            b"POST /openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21 HTTP/1.1\r\n"
            b"Host: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(raw), raw)
        )
        received, deadline = b"", time.monotonic() + 1.0
        while time.monotonic() < deadline:
            received += sock.recv(65536)
    head, _, partial = received.partition(b"\r\n\r\n")
    assert b"200 OK" in head and 0 < len(partial) < int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])


def test_content_as_a_list_of_parts(emulator):
    emulator.configure(faults=Faults(content_parts_marker="<<parts>>"))
    messages = [{"role": "user", "content": "Hello <<parts>>"}]
    body = post(chat_url(emulator.endpoint), {"messages": messages}).json()
    assert body["choices"][0]["message"]["content"] == [{"type": "text", "text": chat_reply(messages)}]
    assert body["choices"][0]["finish_reason"] == "stop"
    plain = post(chat_url(emulator.endpoint), CHAT).json()["choices"][0]["message"]["content"]
    assert plain == chat_reply(CHAT["messages"])


def test_tool_calls_with_null_content(emulator):
    emulator.configure(faults=Faults(tool_calls_marker="<<tool>>"))
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    body = {"messages": [{"role": "user", "content": "Weather in Oslo? <<tool>>"}], "tools": tools}
    response = post(chat_url(emulator.endpoint), body)
    validate(response.json(), component("createChatCompletionResponse"))
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert isinstance(json.loads(call["function"]["arguments"])["city"], str)


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_broken_embeddings(emulator, encoding):
    emulator.configure(faults=Faults(wrong_dimensions_marker="<<short>>", non_finite_marker="<<nan>>"))
    texts = ["fine", "x <<short>>", "y <<nan>>"]
    data = post(emb_url(emulator.endpoint), {"input": texts, "encoding_format": encoding}).json()["data"]
    if encoding == "float":
        vectors = [np.array(item["embedding"], dtype=np.float32) for item in data]
    else:
        vectors = [np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4") for item in data]
    np.testing.assert_array_equal(vectors[0], embed_text("fine", 1536))
    assert vectors[1].shape == (1535,)
    assert vectors[2].shape == (1536,)
    assert np.isnan(vectors[2][0]) and vectors[2][1] == np.inf and vectors[2][2] == -np.inf


def test_nan_is_sent_as_json_extension_literals(emulator):
    emulator.configure(faults=Faults(non_finite_marker="<<nan>>"))
    raw = post(emb_url(emulator.endpoint), {"input": "<<nan>>"}).text
    assert "NaN" in raw and "Infinity" in raw and "-Infinity" in raw


@pytest.mark.parametrize("kind", ["not_json", "missing_field", "wrong_type"])
def test_structured_answers_that_do_not_fit(emulator, kind):
    emulator.configure(faults=Faults(bad_structured_rate=1.0, bad_structured_kind=kind))
    content = post(chat_url(emulator.endpoint), STRUCTURED).json()["choices"][0]["message"]["content"]
    if kind == "not_json":
        with pytest.raises(ValueError):
            json.loads(content)
        return
    with pytest.raises(jsonschema.ValidationError) as caught:
        jsonschema.validate(json.loads(content), SCHEMA)
    assert caught.value.validator == ("required" if kind == "missing_field" else "type")


def test_bad_structured_answers_through_the_responses_api(emulator):
    emulator.configure(faults=Faults(bad_structured_rate=1.0, bad_structured_kind="missing_field"))
    text = {"format": {"type": "json_schema", "name": "r", "schema": SCHEMA, "strict": True}}
    body = {"model": "gpt-4o", "input": "Is the parcel late?", "text": text}
    answer = requests.post(f"{emulator.endpoint}/openai/v1/responses", json=body, timeout=10).json()
    content = answer["output"][0]["content"][0]["text"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(content), SCHEMA)


def test_bad_structured_rate_lets_a_re_ask_succeed(emulator):
    emulator.configure(faults=Faults(bad_structured_rate=0.5, seed=3))
    fits = []
    for _ in range(30):
        content = post(chat_url(emulator.endpoint), STRUCTURED).json()["choices"][0]["message"]["content"]
        try:
            jsonschema.validate(json.loads(content), SCHEMA)
            fits.append(content)
        except (ValueError, jsonschema.ValidationError):
            pass
    assert 5 < len(fits) < 25
    assert set(fits) == {structured_reply(STRUCTURED["messages"], STRUCTURED["response_format"])}


@pytest.mark.parametrize(
    "bad", [{"drop_rate": 1.5}, {"error_500_rate": -0.1}, {"latency_ms": -1}, {"bad_structured_kind": "odd"}]
)
def test_invalid_fault_settings_are_refused(emulator, bad):
    with pytest.raises(ValueError):
        Faults(**bad)
    response = requests.post(f"{emulator.endpoint}/_emulator/config", json={"faults": bad}, timeout=10)
    assert response.status_code == 400


def test_cli_flags_reach_the_faults():
    import subprocess
    import sys

    from spark_aoai.emulator.__main__ import faults_from_args, parse_args

    args = parse_args(["--quota-429-rate", "1", "--quota-retry-after-seconds", "120", "--tool-calls-marker", "T"])
    faults = faults_from_args(args)
    assert (faults.quota_429_rate, faults.quota_retry_after_seconds, faults.tool_calls_marker) == (1.0, 120.0, "T")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "spark_aoai.emulator", "--port", str(port), "--quiet", "--bare-429-rate", "1"]
    child = subprocess.Popen(command)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = post(chat_url(f"http://127.0.0.1:{port}"), CHAT)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert response.status_code == 429 and "retry-after" not in response.headers
    finally:
        child.terminate()
        child.wait(10)
