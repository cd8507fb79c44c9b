"""One request's checks and answer, shared by the online routes and the Batch API's worker.

:func:`check` resolves the deployment to its model (an unknown deployment is a 404; a strict registry also
refuses unpublished api-versions) and refuses what Azure refuses; :func:`respond` builds the 200 body. The HTTP
handler puts the rate limiter and the transport faults between the two; a batch line goes straight from one to
the other (:func:`answer`), so it gets the same body the online route would give for the same deployment and body.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from spark_aoai.emulator import _answers, _responses
from spark_aoai.emulator._catalog import API_VERSIONS, REASONING_MIN_API_VERSION, find_model, known_model
from spark_aoai.emulator._errors import ApiError, bad_request, deployment_not_found
from spark_aoai.emulator._settings import Faults, Settings
from spark_aoai.emulator._state import State
from spark_aoai.emulator._validate import inputs_of, validate


@dataclass(frozen=True)
class Checked:
    """A request that passed the checks: what :func:`respond` needs, and its token cost for the limiter."""

    route: str  # "chat", "embeddings" or "responses"
    model: str
    body: dict[str, Any]
    inputs: list[str]
    tokens: int


def api_version_of(query: dict[str, list[str]], required: bool) -> str | None:
    """The request's api-version; Azure's 400 when a versioned route has none."""
    version = next(iter(query.get("api-version", [])), None)
    if required and not version:
        raise bad_request("Missing required query parameter 'api-version'. Please specify one.")
    return version


def deployed_model(settings: Settings, deployment: str) -> str | None:
    """The model behind ``deployment``, or None when the resource has no such deployment.

    With a registry, its deployments; without, ``extra_deployments`` and the names of known models (each is that
    model: ``gpt-4o-2024-08-06``), so a misspelt name (``gpt4o``) is not served.
    """
    if settings.deployments is not None:
        return settings.deployments.get(deployment)
    if deployment in settings.extra_deployments:
        return settings.extra_deployments[deployment]
    return deployment if known_model(deployment) is not None else None


def model_of(settings: Settings, deployment: str, api_version: str | None) -> str:
    """The model behind ``deployment``: Azure's 404 for an unknown one; a registry refuses unpublished api-versions."""
    model = deployed_model(settings, deployment)
    if model is None:
        raise deployment_not_found()
    if settings.deployments is not None and api_version is not None:
        if api_version not in API_VERSIONS:
            raise bad_request("API version not supported")
        facts = find_model(model)
        if facts is not None and facts.reasoning and api_version < REASONING_MIN_API_VERSION:
            raise bad_request(f"Model {model} is enabled only for api versions {REASONING_MIN_API_VERSION} and later")
    return model


def check(
    settings: Settings,
    route: str,
    deployment: str,
    body: dict[str, Any],
    inputs: list[str],
    api_version: str | None,
) -> Checked:
    """Refuse (:class:`ApiError`) what Azure refuses for this deployment and body; else what answers it."""
    model = model_of(settings, deployment, api_version)
    tokens = validate(route, body, inputs, model, settings.faults, settings.rate_limit.chat_cost)
    return Checked(route, model, body, inputs, tokens)


def respond(state: State, checked: Checked, faults: Faults) -> dict[str, Any] | bytes:
    """The 200 body, with the answer-changing faults of ``faults`` applied (never the transport faults)."""
    if checked.route == "embeddings":
        order = state.shuffled(len(checked.inputs)) if faults.shuffle_embeddings else None
        return _answers.embeddings(checked.model, checked.body, checked.inputs, checked.tokens, faults, order)
    if checked.route == "chat":
        return _answers.chat(checked.model, checked.body, faults, state)
    return _responses.answer(checked.model, checked.body, state)


def answer(
    state: State, settings: Settings, route: str, body: dict[str, Any], api_version: str | None
) -> tuple[int, dict[str, Any], list[str]]:
    """(status, body, inputs) for a body-routed request (the deployment in ``model``), refusals included."""
    inputs = inputs_of(route, body)
    try:
        checked = check(settings, route, str(body.get("model") or ""), body, inputs, api_version)
        reply = respond(state, checked, settings.faults)
    except ApiError as error:
        return error.status, error.body(), inputs
    return 200, json.loads(reply) if isinstance(reply, bytes) else reply, inputs
