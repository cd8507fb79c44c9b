"""The Responses API and multimodal input, through the openai SDK and over plain HTTP."""

from __future__ import annotations

import base64
import hashlib
import json

import openai
import pytest
import requests
from openai.types.responses import Response

from spark_aoai.emulator import Emulator, chat_reply
from tests.openapi import component, validate

PNG = b"\x89PNG\r\n\x1a\n fake image bytes"
PDF = b"%PDF-1.4 a tiny report"
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
PDF_URL = "data:application/pdf;base64," + base64.b64encode(PDF).decode()
DEPLOYMENTS = {"chat": "gpt-4o", "think": "o4-mini", "five": "gpt-5"}
VERSION = "2025-04-01-preview"


def short(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:8]


@pytest.fixture(scope="module")
def emu():
    with Emulator(deployments=DEPLOYMENTS) as emulator:
        yield emulator


@pytest.fixture(scope="module", params=["v1", "azure"])
def client(request, emu):
    if request.param == "v1":
        return openai.OpenAI(base_url=f"{emu.endpoint}/openai/v1", api_key="k", max_retries=0)
    return openai.AzureOpenAI(azure_endpoint=emu.endpoint, api_key="k", api_version=VERSION, max_retries=0)


def test_bodies_fit_the_sdk_models(emu):
    """The SDK parses leniently; its pydantic models, validated strictly, catch a missing or mistyped field."""
    url = f"{emu.endpoint}/openai/v1/responses"
    for body in (
        {"model": "chat", "input": "hi"},
        {"model": "think", "input": "hi", "reasoning": {"effort": "minimal"}},
        {"model": "chat", "input": "word " * 60, "max_output_tokens": 16},
        {"model": "think", "input": "hi", "max_output_tokens": 16},
    ):
        Response.model_validate(requests.post(url, json=body, timeout=10).json())


def test_text_input_through_the_sdk(client, emu):
    response = client.responses.create(model="chat", input="What is a lakehouse?", instructions="Be brief.")
    assert response.status == "completed"
    assert response.output_text == "Emulated answer to: What is a lakehouse?"
    assert [item.type for item in response.output] == ["message"]
    assert response.usage is not None and response.usage.input_tokens > 0
    assert response.usage.output_tokens_details.reasoning_tokens == 0
    assert response.usage.input_tokens_details.cached_tokens == 0
    paths = emu.stats()["paths"]
    assert "/openai/v1/responses" in paths or "/openai/responses" in paths


def test_messages_with_images_and_files(client):
    response = client.responses.create(
        model="chat",
        input=[
            {"role": "user", "content": "Earlier question"},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Describe these"},
                    {"type": "input_image", "image_url": PNG_URL},
                    {"type": "input_image", "image_url": "https://example.com/cat.jpg"},
                    {"type": "input_file", "filename": "report.pdf", "file_data": PDF_URL},
                ],
            },
        ],
    )
    assert response.output_text == (
        f"Emulated answer to: Describe these [image/png {short(PNG)}] [https://example.com/cat.jpg] "
        f"[application/pdf report.pdf {short(PDF)}]"
    )


def test_reasoning_models_report_reasoning(client):
    low = client.responses.create(model="think", input="Plan a trip", reasoning={"effort": "low"})
    high = client.responses.create(model="five", input="Plan a trip", reasoning={"effort": "high"})
    for response in (low, high):
        assert [item.type for item in response.output] == ["reasoning", "message"]
        assert response.output_text == "Emulated answer to: Plan a trip"
        assert response.usage is not None and response.usage.output_tokens_details.reasoning_tokens > 0
    assert high.usage.output_tokens_details.reasoning_tokens > low.usage.output_tokens_details.reasoning_tokens


def test_tiny_max_output_tokens_is_incomplete(client):
    response = client.responses.create(model="chat", input="word " * 60, max_output_tokens=16)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None and response.usage.output_tokens <= 16
    assert "Emulated answer to: word".startswith(response.output_text[:20]) or response.output_text.startswith(
        "Emulated"
    )
    thinking = client.responses.create(model="think", input="hi", max_output_tokens=16)
    assert thinking.status == "incomplete" and [item.type for item in thinking.output] == ["reasoning"]


def test_structured_output_and_verbosity(client):
    schema = {
        "type": "object",
        "properties": {"sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]}},
        "required": ["sentiment"],
        "additionalProperties": False,
    }
    response = client.responses.create(
        model="five",
        input="Arrived broken, and support never answered",
        text={"format": {"type": "json_schema", "name": "r", "schema": schema, "strict": True}, "verbosity": "low"},
    )
    assert json.loads(response.output_text) == {"sentiment": "negative"}


def test_a_long_prompt_seen_twice_is_cached(emu):
    url = f"{emu.endpoint}/openai/v1/responses"
    body = {"model": "chat", "input": "context " * 1500}
    first, second = (requests.post(url, json=body, timeout=10).json() for _ in range(2))
    assert first["usage"]["input_tokens_details"]["cached_tokens"] == 0
    assert first["usage"]["input_tokens_details"]["cache_write_tokens"] >= 1024
    cached = second["usage"]["input_tokens_details"]["cached_tokens"]
    assert cached >= 1024 and cached % 128 == 0 and cached <= second["usage"]["input_tokens"]
    Response.model_validate(second)


@pytest.mark.parametrize(
    ("extra", "code", "param"),
    [
        ({"max_output_tokens": 5}, "integer_below_min_value", "max_output_tokens"),
        ({"reasoning": {"effort": "extreme"}}, "invalid_value", "reasoning.effort"),
        ({"text": {"verbosity": "loud"}}, "invalid_value", "text.verbosity"),
        ({"text": {"format": {"type": "json_schema", "schema": {}}}}, "missing_required_parameter", "text.format.name"),
        ({"input": []}, "missing_required_parameter", "input"),
    ],
)
def test_responses_refusals(emu, extra, code, param):
    body = {"model": "think", "input": "hi", **extra}
    response = requests.post(f"{emu.endpoint}/openai/responses?api-version={VERSION}", json=body, timeout=10)
    assert response.status_code == 400, response.text
    validate(response.json(), component("errorResponse"))
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == (code, param)


def test_effort_on_a_model_that_does_not_reason(emu):
    body = {"model": "chat", "input": "hi", "reasoning": {"effort": "low"}}
    response = requests.post(f"{emu.endpoint}/openai/v1/responses", json=body, timeout=10)
    assert response.status_code == 400 and response.json()["error"]["code"] == "unsupported_parameter"


def test_azure_responses_path_needs_an_api_version(emu):
    response = requests.post(f"{emu.endpoint}/openai/responses", json={"model": "chat", "input": "x"}, timeout=10)
    assert response.status_code == 400 and "api-version" in response.json()["error"]["message"]


def test_chat_completions_take_image_parts(emu):
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in the picture?"},
                {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}},
            ],
        }
    ]
    url = f"{emu.endpoint}/openai/deployments/chat/chat/completions?api-version={VERSION}"
    body = requests.post(url, json={"messages": messages}, timeout=10).json()
    validate(body, component("createChatCompletionResponse"))
    assert body["choices"][0]["message"]["content"] == chat_reply(messages)
    assert (
        body["choices"][0]["message"]["content"]
        == f"Emulated answer to: What is in the picture? [image/png {short(PNG)}]"
    )
    broken = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,%%"}}]}]
    refused = requests.post(url, json={"messages": broken}, timeout=10)
    assert refused.status_code == 400
    validate(refused.json(), component("errorResponse"))


def test_reasoning_chat_reports_reasoning_tokens_and_cuts_at_the_limit(emu):
    url = f"{emu.endpoint}/openai/deployments/think/chat/completions?api-version={VERSION}"
    messages = [{"role": "user", "content": "Think about it"}]
    body = requests.post(url, json={"messages": messages, "reasoning_effort": "high"}, timeout=10).json()
    validate(body, component("createChatCompletionResponse"))
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0
    assert body["choices"][0]["message"]["content"] == chat_reply(messages)
    cut = requests.post(url, json={"messages": messages, "max_completion_tokens": 100}, timeout=10).json()
    assert cut["choices"][0]["finish_reason"] == "length" and cut["choices"][0]["message"]["content"] == ""
    assert cut["usage"]["completion_tokens"] == 100
