"""The emulator speaks Azure OpenAI's published contract, over real HTTP, for the openai SDK too."""

from __future__ import annotations

import base64
import json

import numpy as np
import openai
import pytest
import requests

from spark_aoai.emulator import Emulator, Faults, RateLimit, chat_reply
from tests.openapi import component, embeddings_response_schema, validate

API_VERSION = "2024-10-21"
CHAT = {"messages": [{"role": "user", "content": "Does Azure OpenAI support customer managed keys?"}]}


def post(url: str, body: object, **headers: str) -> requests.Response:
    return requests.post(
        url, data=json.dumps(body), headers={"Content-Type": "application/json", **headers}, timeout=10
    )


def chat_url(endpoint: str, deployment: str = "gpt-4o") -> str:
    return f"{endpoint}/openai/deployments/{deployment}/chat/completions?api-version={API_VERSION}"


def emb_url(endpoint: str, deployment: str = "text-embedding-3-small") -> str:
    return f"{endpoint}/openai/deployments/{deployment}/embeddings?api-version={API_VERSION}"


@pytest.mark.parametrize(
    ("path", "body_extra"),
    [
        ("/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", {}),
        ("/openai/v1/chat/completions", {"model": "gpt-4o"}),
        ("/workload/cognitive/openai/openai/deployments/gpt-4o/chat/completions?api-version=2025-04-01-preview", {}),
        ("/apim/prefix/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", {}),
    ],
    ids=["deployments", "v1", "fabric-prefix", "apim-prefix"],
)
def test_chat_paths_validate_against_the_published_schema(emulator, path, body_extra):
    response = post(emulator.endpoint + path, {**CHAT, **body_extra})
    assert response.status_code == 200
    body = response.json()
    validate(body, component("createChatCompletionResponse"))
    assert body["choices"][0]["message"]["content"] == chat_reply(CHAT["messages"])
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    assert body["choices"][0]["finish_reason"] == "stop"
    assert response.headers["apim-request-id"]
    assert {"x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens"} <= set(response.headers)


def test_each_prompt_gets_its_own_answer(emulator):
    answers = {
        post(chat_url(emulator.endpoint), {"messages": [{"role": "user", "content": f"q{i}"}]}).json()["choices"][0][
            "message"
        ]["content"]
        for i in range(20)
    }
    assert len(answers) == 20


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_embeddings_validate_and_decode(emulator, encoding):
    texts = ["the cat sat on the mat", "a cat sat on a mat", "quarterly revenue grew in Europe"]
    response = post(emb_url(emulator.endpoint), {"input": texts, "encoding_format": encoding})
    assert response.status_code == 200
    body = response.json()
    if encoding == "float":
        validate(body, embeddings_response_schema())
        vectors = [np.array(item["embedding"], dtype=np.float32) for item in body["data"]]
    else:
        vectors = [np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4") for item in body["data"]]
    assert [item["index"] for item in body["data"]] == [0, 1, 2]
    assert all(v.shape == (1536,) for v in vectors)
    assert all(abs(float(np.linalg.norm(v)) - 1.0) < 1e-5 for v in vectors)
    similar, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert similar > 0.5 > unrelated


@pytest.mark.parametrize(
    ("deployment", "dimensions", "size"),
    [
        ("text-embedding-ada-002", None, 1536),
        ("text-embedding-3-large", None, 3072),
        ("text-embedding-3-large", 256, 256),
    ],
)
def test_embedding_sizes(emulator, deployment, dimensions, size):
    body = {"input": "hello", **({"dimensions": dimensions} if dimensions else {})}
    data = post(emb_url(emulator.endpoint, deployment), body).json()["data"]
    assert len(data[0]["embedding"]) == size


@pytest.mark.parametrize("bad_input", ["", [], ["ok", ""], ["x"] * 2049])
def test_embeddings_reject_what_azure_rejects(emulator, bad_input):
    response = post(emb_url(emulator.endpoint), {"input": bad_input})
    assert response.status_code == 400
    validate(response.json(), component("errorResponse"))


def test_missing_api_version_is_400(emulator):
    response = post(f"{emulator.endpoint}/openai/deployments/gpt-4o/chat/completions", CHAT)
    assert response.status_code == 400
    validate(response.json(), component("errorResponse"))
    assert "api-version" in response.json()["error"]["message"]


def test_api_key_is_required_when_configured():
    with Emulator(api_key="right-key") as emu:
        for headers in ({}, {"api-key": "wrong"}, {"Authorization": "Bearer wrong"}):
            response = post(chat_url(emu.endpoint), CHAT, **headers)
            assert response.status_code == 401
            assert "x-ratelimit-remaining-requests" in response.headers
            validate(response.json(), component("errorResponse"))
        assert post(chat_url(emu.endpoint), CHAT, **{"api-key": "right-key"}).status_code == 200
        assert post(chat_url(emu.endpoint), CHAT, Authorization="Bearer right-key").status_code == 200


def test_rate_limit_gives_429_with_retry_headers():
    with Emulator(rate_limit=RateLimit(requests_per_minute=120, window_seconds=1.0)) as emu:
        statuses, last = [], None
        for _ in range(4):
            last = post(chat_url(emu.endpoint), CHAT)
            statuses.append(last.status_code)
            assert "x-ratelimit-remaining-requests" in last.headers
        assert statuses[:2] == [200, 200]
        assert statuses[2] == 429
        assert last is not None and last.status_code == 429
        validate(last.json(), component("errorResponse"))
        assert 0 < int(last.headers["retry-after-ms"]) <= 1000
        assert int(last.headers["retry-after"]) >= 1


def test_token_rate_limit_reports_remaining_tokens():
    with Emulator(rate_limit=RateLimit(tokens_per_minute=60 * 100)) as emu:
        first = post(chat_url(emu.endpoint), {**CHAT, "max_tokens": 40})
        assert first.status_code == 200
        assert int(first.headers["x-ratelimit-remaining-tokens"]) < 100 - 40
        second = post(chat_url(emu.endpoint), {**CHAT, "max_tokens": 80})
        assert second.status_code == 429


def test_content_filter_and_context_length_errors(emulator):
    emulator.configure(
        faults=Faults(content_filter_marker="<<bad>>", context_length_marker="<<long>>", max_input_tokens=50)
    )
    filtered = post(chat_url(emulator.endpoint), {"messages": [{"role": "user", "content": "x <<bad>> y"}]})
    assert filtered.status_code == 400
    validate(filtered.json(), component("errorResponse"))
    error = filtered.json()["error"]
    assert error["code"] == "content_filter"
    assert error["innererror"]["content_filter_result"]["hate"]["filtered"] is True
    for content in ("<<long>>", "word " * 200):
        too_long = post(chat_url(emulator.endpoint), {"messages": [{"role": "user", "content": content}]})
        assert too_long.status_code == 400
        assert too_long.json()["error"]["code"] == "context_length_exceeded"
    assert post(emb_url(emulator.endpoint), {"input": ["fine", "also <<bad>>"]}).status_code == 400


def test_finish_reason_content_filter_is_a_200(emulator):
    emulator.configure(faults=Faults(finish_content_filter_marker="<<cut>>"))
    response = post(chat_url(emulator.endpoint), {"messages": [{"role": "user", "content": "<<cut>> me"}]})
    assert response.status_code == 200
    validate(response.json(), component("createChatCompletionResponse"))
    assert response.json()["choices"][0]["finish_reason"] == "content_filter"


def test_transport_faults(emulator):
    emulator.configure(faults=Faults(error_500_rate=1.0))
    response = post(chat_url(emulator.endpoint), CHAT)
    assert response.status_code == 500
    validate(response.json(), component("errorResponse"))
    emulator.configure(faults=Faults(error_503_rate=1.0))
    assert post(chat_url(emulator.endpoint), CHAT).status_code == 503
    emulator.configure(faults=Faults(malformed_rate=1.0))
    with pytest.raises(ValueError):
        post(chat_url(emulator.endpoint), CHAT).json()
    emulator.configure(faults=Faults(drop_rate=1.0))
    with pytest.raises(requests.ConnectionError):
        post(chat_url(emulator.endpoint), CHAT)
    emulator.configure(faults=Faults(slow_rate=1.0, slow_seconds=2.0))
    with pytest.raises(requests.Timeout):
        requests.post(chat_url(emulator.endpoint), json=CHAT, timeout=0.3)
    stats = emulator.stats()["requests"]
    assert stats["chat 500"] == 1 and stats["chat 503"] == 1 and stats["chat -200"] == 1 and stats["chat 0"] == 1


def test_structured_outputs(emulator):
    schema = {
        "type": "object",
        "properties": {
            "sentiment": {"type": "string", "enum": ["positive", "negative"]},
            "score": {"type": "number"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["sentiment", "score", "tags"],
        "additionalProperties": False,
    }
    body = {
        **CHAT,
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": schema, "strict": True}},
    }
    content = post(chat_url(emulator.endpoint), body).json()["choices"][0]["message"]["content"]
    import jsonschema

    jsonschema.validate(json.loads(content), schema)
    content = post(chat_url(emulator.endpoint), {**CHAT, "response_format": {"type": "json_object"}}).json()
    assert isinstance(json.loads(content["choices"][0]["message"]["content"]), dict)


def test_openai_sdk_azure_client(emulator):
    client = openai.AzureOpenAI(azure_endpoint=emulator.endpoint, api_key="k", api_version=API_VERSION, max_retries=0)
    completion = client.chat.completions.create(model="gpt-4o", messages=CHAT["messages"])
    assert completion.choices[0].message.content == chat_reply(CHAT["messages"])
    assert completion.usage is not None and completion.usage.total_tokens > 0
    for encoding in ("float", "base64"):
        result = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"], encoding_format=encoding)
        assert [d.index for d in result.data] == [0, 1]
    vectors = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"]).data
    assert len(vectors[0].embedding) == 1536


def test_openai_sdk_v1_client_and_errors():
    with Emulator(api_key="k1") as emu:
        client = openai.OpenAI(base_url=f"{emu.endpoint}/openai/v1", api_key="k1", max_retries=0)
        assert client.chat.completions.create(model="gpt-4o", messages=CHAT["messages"]).choices
        assert len(client.embeddings.create(model="text-embedding-3-small", input="x").data) == 1
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{emu.endpoint}/openai/v1", api_key="bad", max_retries=0).chat.completions.create(
                model="gpt-4o", messages=CHAT["messages"]
            )
        with pytest.raises(openai.BadRequestError):
            client.embeddings.create(model="text-embedding-3-small", input="")
        emu.configure(rate_limit=RateLimit(requests_per_minute=60))
        with pytest.raises(openai.RateLimitError):
            for _ in range(3):
                client.chat.completions.create(model="gpt-4o", messages=CHAT["messages"])


def test_stats_count_requests_and_inputs(emulator):
    post(emb_url(emulator.endpoint), {"input": ["a", "b", "a"]})
    post(chat_url(emulator.endpoint), CHAT)
    stats = emulator.stats()
    assert stats["requests"] == {"embeddings 200": 1, "chat 200": 1}
    assert stats["inputs"]["a"] == 2 and stats["inputs"]["b"] == 1
    assert stats["answered_inputs"] == {"a": 2, "b": 1, CHAT["messages"][0]["content"]: 1}
    assert sorted(stats["inputs_per_request"]) == [1, 3]
    emulator.reset_stats()
    assert emulator.stats()["requests"] == {}


def test_cli_serves_until_stopped():
    with Emulator(process=True, api_key="cli-key") as emu:
        response = post(chat_url(emu.endpoint), CHAT, **{"api-key": "cli-key"})
        assert response.status_code == 200
