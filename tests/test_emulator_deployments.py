"""Which deployments an emulator without a registry serves: the names of models it knows, and those it is told of.

A misspelt deployment (``gpt4o``) is Azure's 404 ``DeploymentNotFound`` on every route, so a pipeline's tests
against the emulator catch the typo as Azure would.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from spark_aoai.emulator import Emulator, Settings
from spark_aoai.emulator.__main__ import main
from spark_aoai.emulator._catalog import known_model
from spark_aoai.emulator._dispatch import deployed_model
from tests.openapi import component, validate
from tests.test_emulator_batch import azure, chat_line, records, run

NOT_FOUND = {
    "error": {
        "code": "DeploymentNotFound",
        "message": "The API deployment for this resource does not exist. If you created the deployment within "
        "the last 5 minutes, please wait a moment and try again.",
    }
}
CHAT = {"messages": [{"role": "user", "content": "hello"}]}
EMBED = {"input": "hello"}
RESPOND = {"input": "hello"}
VERSION = "2025-04-01-preview"


@pytest.fixture(scope="module")
def loose():
    with Emulator() as emu:
        yield emu


def ask(emu: Emulator, route: str, deployment: str) -> requests.Response:
    """One request for ``deployment``: in the path (``chat``, ``embeddings``) or in the body (the others)."""
    in_path = {"chat": ("chat/completions", CHAT), "embeddings": ("embeddings", EMBED)}
    in_body = {
        "responses": ("/openai/responses", RESPOND),
        "v1 chat": ("/openai/v1/chat/completions", CHAT),
        "v1 embeddings": ("/openai/v1/embeddings", EMBED),
        "v1 responses": ("/openai/v1/responses", RESPOND),
    }
    if route in in_path:
        op, body = in_path[route]
        url = f"{emu.endpoint}/openai/deployments/{deployment}/{op}?api-version={VERSION}"
        return requests.post(url, json=body, timeout=30)
    path, body = in_body[route]
    return requests.post(f"{emu.endpoint}{path}?api-version={VERSION}", json={**body, "model": deployment}, timeout=30)


@pytest.mark.parametrize("route", ["chat", "embeddings", "responses", "v1 chat", "v1 embeddings", "v1 responses"])
@pytest.mark.parametrize("deployment", ["gpt4o", "gtp-4o", "gpt-4o-mnii", "text-embedding-3-smal", "my-chat"])
def test_an_unknown_deployment_is_azures_404_on_every_route(loose, route, deployment):
    response = ask(loose, route, deployment)
    assert (response.status_code, response.json()) == (404, NOT_FOUND)
    validate(response.json(), component("errorResponse"))


@pytest.mark.parametrize(
    ("route", "deployment"),
    [
        ("chat", "gpt-4o"),
        ("chat", "gpt-4o-2024-08-06"),
        ("chat", "gpt-4.1-mini"),
        ("v1 chat", "gpt-5-mini"),
        ("responses", "o3-mini"),
        ("v1 responses", "gpt-4o"),
        ("embeddings", "text-embedding-3-small"),
        ("v1 embeddings", "text-embedding-ada-002"),
    ],
)
def test_a_known_model_name_is_served_as_that_model(loose, route, deployment):
    response = ask(loose, route, deployment)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == deployment


def test_an_extra_deployment_is_served_as_its_model():
    with Emulator(extra_deployments={"my-chat": "gpt-4o", "my-emb": "text-embedding-3-large"}) as emu:
        chat = ask(emu, "chat", "my-chat")
        assert chat.status_code == 200 and chat.json()["model"] == "gpt-4o"
        vectors = ask(emu, "v1 embeddings", "my-emb").json()
        assert vectors["model"] == "text-embedding-3-large" and len(vectors["data"][0]["embedding"]) == 3072
        assert ask(emu, "v1 responses", "my-chat").status_code == 200
        assert ask(emu, "chat", "gpt-4o").status_code == 200  # the known names stay served
        emu.configure(extra_deployments={"later": "gpt-4.1"})
        assert ask(emu, "chat", "later").json()["model"] == "gpt-4.1"
        assert ask(emu, "chat", "my-chat").status_code == 404  # replaced, not merged


def test_a_batch_for_an_unknown_deployment_fails_validation():
    with Emulator(extra_deployments={"my-batch": "gpt-4o"}) as emu:
        client = azure(emu)
        typo = run(client, [chat_line("a", "hello", model="gpt4o")])
        assert typo.status == "failed" and typo.errors and typo.errors.data
        assert typo.errors.data[0].code == "model_not_found"
        served = run(client, [chat_line("a", "hello", model="my-batch")])
        assert served.status == "completed"
        assert records(client, served.output_file_id)["a"]["response"]["body"]["model"] == "gpt-4o"


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("gpt-4o", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-35-turbo-16k-0613", "gpt-35-turbo"),
        ("gpt-4-32k", "gpt-4-32k"),
        ("o4-mini", "o4-mini"),
        ("gpt-5-nano", "gpt-5"),
        ("text-embedding-3-large", "text-embedding-3-large"),
        ("gpt4o", None),
        ("gpt-4o-", None),
        ("gpt-4omini", None),
        ("gpt-4o-batch", None),
        ("text-embedding-3", None),
        ("chat", None),
        ("", None),
    ],
)
def test_known_model_takes_versions_and_variants_not_typos(name, model):
    found = known_model(name)
    assert (found.name if found else None) == model


def test_deployed_model_reads_the_registry_then_the_extras_then_the_known_names():
    loose = Settings(extra_deployments={"mine": "gpt-4.1"})
    assert [deployed_model(loose, n) for n in ("mine", "gpt-4o", "gpt4o")] == ["gpt-4.1", "gpt-4o", None]
    strict = Settings(deployments={"chat": "gpt-4o"}, extra_deployments={"mine": "gpt-4.1"})
    assert [deployed_model(strict, n) for n in ("chat", "mine", "gpt-4o")] == ["gpt-4o", None, None]


def test_extra_deployments_travel_with_the_settings():
    settings = Settings.from_dict(json.loads(json.dumps({"extra_deployments": {"a": "gpt-4o"}})))
    assert settings.extra_deployments == {"a": "gpt-4o"}
    assert Settings.from_dict({}).extra_deployments == {}


def test_the_cli_flag_is_checked(capsys: Any):
    for argv, message in (
        (["--extra-deployment", "no-model"], "--extra-deployment takes NAME=MODEL, not 'no-model'"),
        (["--extra-deployment", "a=gpt-4o", "--deployment", "b=gpt-4o"], "with --deployment, list every"),
    ):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2 and message in capsys.readouterr().err
