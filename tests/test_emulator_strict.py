"""A strict emulator: a deployments registry, published api-versions, and Azure's 400s for bad parameters.

Every refusal is checked for its status and code, and its body against Azure's published OpenAPI document.
"""

from __future__ import annotations

import json

import openai
import pytest
import requests

from spark_aoai.emulator import Emulator, Faults
from spark_aoai.emulator._catalog import API_VERSIONS
from spark_aoai.emulator._tokencount import count_message_tokens
from tests.openapi import component, validate

DEPLOYMENTS = {
    "chat": "gpt-4o",
    "big": "gpt-4.1",
    "think": "o3-mini",
    "five": "gpt-5",
    "emb": "text-embedding-3-small",
    "large": "text-embedding-3-large",
    "ada": "text-embedding-ada-002",
}
MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def strict():
    with Emulator(deployments=DEPLOYMENTS) as emu:
        yield emu


def post(url: str, body: object) -> requests.Response:
    return requests.post(url, data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=30)


def url(emu: Emulator, deployment: str, op: str = "chat/completions", version: str = "2024-10-21") -> str:
    return f"{emu.endpoint}/openai/deployments/{deployment}/{op}?api-version={version}"


def refused(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    validate(body, component("errorResponse"))
    assert body["error"]["code"] == code, body
    return dict(body["error"])


def test_registered_deployments_answer_with_their_model(strict):
    body = post(url(strict, "chat"), {"messages": MESSAGES}).json()
    assert body["model"] == "gpt-4o"
    validate(body, component("createChatCompletionResponse"))
    vectors = post(url(strict, "large", "embeddings"), {"input": "x"}).json()
    assert vectors["model"] == "text-embedding-3-large" and len(vectors["data"][0]["embedding"]) == 3072


@pytest.mark.parametrize("path", ["/openai/deployments/gpt-4o/chat/completions", "/openai/deployments/x/embeddings"])
def test_unknown_deployment_is_azures_404(strict, path):
    error = refused(
        post(f"{strict.endpoint}{path}?api-version=2024-10-21", {"messages": MESSAGES}), 404, "DeploymentNotFound"
    )
    assert error["message"] == (
        "The API deployment for this resource does not exist. If you created the deployment within the last 5 "
        "minutes, please wait a moment and try again."
    )


def test_unknown_deployment_through_the_v1_route_and_the_sdk(strict):
    client = openai.OpenAI(base_url=f"{strict.endpoint}/openai/v1", api_key="k", max_retries=0)
    assert client.chat.completions.create(model="chat", messages=MESSAGES).choices
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert caught.value.code == "DeploymentNotFound"


def test_without_a_registry_any_api_version_is_served(emulator):
    assert post(url(emulator, "gpt-4o", version="1999-01-01"), {"messages": MESSAGES}).status_code == 200
    assert post(url(emulator, "anything-at-all"), {"messages": MESSAGES}).status_code == 404  # a known name only


@pytest.mark.parametrize(
    "version",
    [
        "2024-02-01",
        "2024-06-01",
        "2024-10-21",
        "2024-12-01-preview",
        "2025-01-01-preview",
        "2025-03-01-preview",
        "2025-04-01-preview",
    ],
)
def test_published_api_versions_are_served(strict, version):
    assert version in API_VERSIONS
    assert post(url(strict, "chat", version=version), {"messages": MESSAGES}).status_code == 200


@pytest.mark.parametrize("version", ["2024-10-22", "2099-01-01-preview", "latest", "2024-13-01"])
def test_unpublished_api_versions_are_refused(strict, version):
    error = refused(post(url(strict, "chat", version=version), {"messages": MESSAGES}), 400, "BadRequest")
    assert error["message"] == "API version not supported"


def test_reasoning_models_need_a_recent_api_version(strict):
    error = refused(post(url(strict, "think", version="2024-10-21"), {"messages": MESSAGES}), 400, "BadRequest")
    assert "2024-12-01-preview and later" in error["message"]
    assert post(url(strict, "think", version="2024-12-01-preview"), {"messages": MESSAGES}).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/openai/deployments/chat/openai/deployments/chat/chat/completions?api-version=2024-10-21",
        "/openai/deployments/chat/openai/v1/chat/completions",
    ],
)
def test_an_endpoint_pasted_with_its_path_is_404(emulator, path):
    refused(post(f"{emulator.endpoint}{path}", {"messages": MESSAGES, "model": "chat"}), 404, "404")


V = "2025-04-01-preview"
CHAT_CASES = [
    ("chat", {"temperature": 2.5}, "decimal_above_max_value", "temperature"),
    ("chat", {"temperature": -0.1}, "decimal_below_min_value", "temperature"),
    ("chat", {"temperature": "hot"}, "invalid_type", "temperature"),
    ("chat", {"top_p": 1.2}, "decimal_above_max_value", "top_p"),
    ("chat", {"top_p": -1}, "decimal_below_min_value", "top_p"),
    ("chat", {"response_format": {"type": "xml"}}, "invalid_value", "response_format.type"),
    (
        "chat",
        {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
        "missing_required_parameter",
        "response_format.json_schema.name",
    ),
    (
        "chat",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
        "missing_required_parameter",
        "response_format.json_schema.schema",
    ),
    ("chat", {"max_tokens": 5, "max_completion_tokens": 5}, "invalid_request_error", "max_tokens"),
    ("think", {"max_tokens": 5}, "unsupported_parameter", "max_tokens"),
    ("think", {"temperature": 0.2}, "unsupported_value", "temperature"),
    ("five", {"top_p": 0.5}, "unsupported_value", "top_p"),
]


@pytest.mark.parametrize(("deployment", "extra", "code", "param"), CHAT_CASES)
def test_chat_parameters_azure_refuses(strict, deployment, extra, code, param):
    error = refused(post(url(strict, deployment, version=V), {"messages": MESSAGES, **extra}), 400, code)
    assert error["param"] == param and error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "extra",
    [
        {"temperature": 0},
        {"temperature": 2},
        {"top_p": 1},
        {"max_completion_tokens": 5},
        {"response_format": {"type": "text"}},
    ],
)
def test_chat_parameters_at_the_edges_are_accepted(strict, extra):
    assert post(url(strict, "chat", version=V), {"messages": MESSAGES, **extra}).status_code == 200


def test_reasoning_models_accept_their_defaults(strict):
    body = {"messages": MESSAGES, "temperature": 1, "max_completion_tokens": 50}
    assert post(url(strict, "think", version=V), body).status_code == 200


@pytest.mark.parametrize(
    ("deployment", "dimensions", "code"),
    [
        ("ada", 512, "invalid_request_error"),
        ("emb", 1537, "invalid_value"),
        ("large", 0, "invalid_value"),
        ("emb", -3, "invalid_value"),
    ],
)
def test_dimensions_azure_refuses(strict, deployment, dimensions, code):
    body = {"input": "x", "dimensions": dimensions}
    error = refused(post(url(strict, deployment, "embeddings"), body), 400, code)
    assert error["param"] == "dimensions"


def test_dimensions_within_the_model_size(strict):
    data = post(url(strict, "large", "embeddings"), {"input": "x", "dimensions": 3072}).json()["data"]
    assert len(data[0]["embedding"]) == 3072


def test_operation_must_fit_the_model(strict):
    refused(post(url(strict, "emb"), {"messages": MESSAGES}), 400, "OperationNotSupported")
    refused(post(url(strict, "chat", "embeddings"), {"input": "x"}), 400, "OperationNotSupported")


def test_context_limits_by_model(strict):
    long_text = "word " * 130_000  # about 130,000 tokens: over gpt-4o's 128k, well under gpt-4.1's ~1M
    messages = [{"role": "user", "content": long_text}]
    error = refused(post(url(strict, "chat"), {"messages": messages}), 400, "context_length_exceeded")
    assert "128000" in error["message"] and str(count_message_tokens(messages, "gpt-4o")) in error["message"]
    assert post(url(strict, "big"), {"messages": messages}).status_code == 200
    refused(post(url(strict, "emb", "embeddings"), {"input": ["ok", "word " * 9000]}), 400, "context_length_exceeded")
    assert post(url(strict, "emb", "embeddings"), {"input": "word " * 8000}).status_code == 200


def test_max_input_tokens_fault_overrides_the_model_limit():
    with Emulator(deployments=DEPLOYMENTS, faults=Faults(max_input_tokens=20)) as emu:
        messages = [{"role": "user", "content": "word " * 30}]
        error = refused(post(url(emu, "big"), {"messages": messages}), 400, "context_length_exceeded")
        assert "maximum context length is 20 tokens" in error["message"]


def test_registry_in_a_child_process_and_its_flag_parser():
    with Emulator(process=True, deployments={"only": "gpt-4o-mini"}) as emu:
        assert post(url(emu, "only"), {"messages": MESSAGES}).json()["model"] == "gpt-4o-mini"
        refused(post(url(emu, "gpt-4o"), {"messages": MESSAGES}), 404, "DeploymentNotFound")
    from spark_aoai.emulator.__main__ import deployments_from_args

    assert deployments_from_args(["a=gpt-4o", "b=text-embedding-3-small"]) == {
        "a": "gpt-4o",
        "b": "text-embedding-3-small",
    }
    with pytest.raises(SystemExit):
        deployments_from_args(["no-model"])
