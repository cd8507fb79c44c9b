"""Failover over several deployments (``deployments=[...]``), resolved on the driver.

Each entry is a dict with ``deploymentName`` and optionally ``endpoint`` and its own credential (``apiKey``,
``aadToken``, ``tokenProvider``) and ``headers``; what an entry does not give comes from the stage (its
``endpoint``, its credential, the environment). The first entry is the primary deployment: it names the
job in the response cache's keys. The list without its secrets is the ``deployments`` Param (saved with the
stage); the secrets stay in the stage's ``_secrets``, like the stage's own.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from spark_aoai._client.config import ClientConfig
from spark_aoai.exceptions import ConfigurationError

PUBLIC_KEYS = ("endpoint", "deploymentName")
SECRET_KEYS = ("apiKey", "aadToken", "tokenProvider", "headers")

# connect(deployment, endpoint, secrets) -> the ClientConfig of one deployment
Connect = Callable[[str, "str | None", dict[str, Any]], ClientConfig]


def split_deployments(value: Any) -> tuple[str, list[dict[str, Any]]]:
    """``deployments=[...]`` as the Param's JSON (no secrets) and each entry's secrets, checked."""
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigurationError("deployments must be a non-empty list of dicts with 'deploymentName'")
    public, secrets = [], []
    for position, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise ConfigurationError(f"deployments[{position}] must be a dict, got a {type(entry).__name__}")
        unknown = sorted(set(entry) - set(PUBLIC_KEYS) - set(SECRET_KEYS))
        if unknown:
            raise ConfigurationError(
                f"deployments[{position}] has unknown keys {unknown}; the keys are {[*PUBLIC_KEYS, *SECRET_KEYS]}"
            )
        name = entry.get("deploymentName")
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"deployments[{position}] needs a 'deploymentName'")
        public.append({key: entry[key] for key in PUBLIC_KEYS if entry.get(key) is not None})
        secrets.append({key: entry[key] for key in SECRET_KEYS if entry.get(key) is not None})
    return json.dumps(public), secrets


def resolve_deployments(
    listed: str | None, secrets: list[dict[str, Any]] | None, single: str | None, connect: Connect
) -> ClientConfig:
    """The primary deployment's config with the others as its failover; ``single`` is ``deploymentName``."""
    if not listed:
        return connect(single or "", None, {})
    if single:
        raise ConfigurationError("give deploymentName (one deployment) or deployments=[...] (failover), not both")
    entries = json.loads(listed)
    secrets = secrets or [{} for _ in entries]
    if len(secrets) != len(entries):  # a loaded stage: its credentials were not saved
        secrets = [{} for _ in entries]
    configs = [connect(e["deploymentName"], e.get("endpoint"), s) for e, s in zip(entries, secrets, strict=True)]
    return dataclasses.replace(configs[0], failover=tuple(configs[1:]))
