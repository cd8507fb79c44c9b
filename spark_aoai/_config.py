"""Connection settings resolved on the driver and shipped to executors as small frozen, picklable values."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from spark_aoai._auth import (
    ApiKey,
    Credential,
    FabricToken,
    NoCredential,
    Secret,
    StaticToken,
    TokenProvider,
)
from spark_aoai._retry import RetryPolicy
from spark_aoai.exceptions import ConfigurationError

DEFAULT_API_VERSION = "2025-04-01-preview"
ENV_ENDPOINT = "AZURE_OPENAI_ENDPOINT"
ENV_API_KEY = "AZURE_OPENAI_API_KEY"
ENV_API_VERSION = "OPENAI_API_VERSION"

ApiStyle = Literal["azure", "azure_v1", "openai"]
API_STYLES = ("auto", "azure", "azure_v1", "openai")


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: a normalised base URL and the API's path style.

    - ``azure``: ``{base}/openai/deployments/{deployment}/{operation}?api-version=...``
    - ``azure_v1``: ``{base}/{operation}`` with ``base`` ending in ``/openai/v1``, deployment in ``model``
    - ``openai``: ``{base}/{operation}`` for OpenAI-compatible servers, model in ``model``
    """

    base_url: str
    style: ApiStyle
    api_version: str | None = None

    def url(self, deployment: str, operation: str) -> str:
        if self.style == "azure":
            return (
                f"{self.base_url}/openai/deployments/{quote(deployment, safe='')}/{operation}"
                f"?api-version={quote(self.api_version or DEFAULT_API_VERSION, safe='')}"
            )
        return f"{self.base_url}/{operation}"

    @property
    def model_in_body(self) -> bool:
        return self.style != "azure"


def resolve_endpoint(endpoint: str, api_style: str = "auto", api_version: str | None = None) -> Endpoint:
    """Validate and normalise an endpoint URL; the style ``auto`` is read from the URL's path.

    >>> resolve_endpoint("https://res.openai.azure.com/").url("gpt-4o", "chat/completions")
    'https://res.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2025-04-01-preview'
    >>> resolve_endpoint("https://res.openai.azure.com/openai/v1/").style
    'azure_v1'
    """
    if api_style not in API_STYLES:
        raise ConfigurationError(f"apiStyle must be one of {', '.join(API_STYLES)}, got {api_style!r}")
    text = (endpoint or "").strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigurationError(
            f"endpoint must be an http(s) URL without query or fragment, such as "
            f"https://<resource>.openai.azure.com, got {text!r}"
        )
    base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    path = parts.path.rstrip("/")
    style: ApiStyle
    if api_style == "auto":
        if path.endswith("/openai/v1"):
            style = "azure_v1"
        elif path.endswith("/v1"):
            style = "openai"
        else:
            style = "azure"
    else:
        style = api_style  # type: ignore[assignment]
    if style == "azure_v1" and not path.endswith("/openai/v1"):
        base = f"{base}/openai/v1"
    return Endpoint(base, style, (api_version or DEFAULT_API_VERSION) if style == "azure" else None)


@dataclass(frozen=True)
class Limits:
    """Concurrency, rate budgets and time limits for one partition's sender."""

    concurrency: int = 32
    max_requests_per_minute: float | None = None
    max_tokens_per_minute: float | None = None
    concurrent_tasks: int = 1
    deadline_seconds: float | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 300.0


@dataclass(frozen=True)
class ClientConfig:
    """Everything an executor needs to send requests; built on the driver, pickled with the task."""

    endpoint: Endpoint
    deployment: str
    credential: Credential = field(default_factory=NoCredential)
    headers: tuple[tuple[str, Secret], ...] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    limits: Limits = field(default_factory=Limits)
    verify: bool | str = True
    fail_on_error: bool = False

    def secrets(self) -> list[str]:
        return self.credential.secrets() + [value.reveal() for _, value in self.headers]

    def __repr__(self) -> str:
        return (
            f"ClientConfig(endpoint={self.endpoint!r}, deployment={self.deployment!r}, "
            f"credential={self.credential!r}, headers={[name for name, _ in self.headers]!r})"
        )


@dataclass(frozen=True)
class FabricEnvironment:
    """What Fabric's runtime tells about its built-in Azure OpenAI endpoint."""

    endpoint: str
    credential: FabricToken


def detect_fabric() -> FabricEnvironment | None:
    """Fabric's built-in endpoint and token when its runtime modules are importable, else None."""
    try:
        from synapse.ml.mlflow import get_mlflow_env_config  # type: ignore[import-not-found]
        from trident_token_library_wrapper import PyTridentTokenLibrary  # type: ignore[import-not-found]
    except ImportError:
        return None
    config = get_mlflow_env_config()
    workspace_id, artifact_id = str(config.workspace_id), str(config.artifact_id)
    token = PyTridentTokenLibrary.get_mwc_token(workspace_id, artifact_id, 2)
    endpoint = f"{config.workload_endpoint}cognitive/openai"
    return FabricEnvironment(endpoint, FabricToken(workspace_id, artifact_id, Secret(str(token))))


def build_credential(
    api_key: str | None,
    aad_token: str | None,
    token_provider: Any,
    style: ApiStyle,
    fabric: FabricEnvironment | None,
) -> Credential:
    """Exactly one credential kind: explicit arguments first, then the environment, then Fabric's."""
    given = [
        name
        for name, value in (("apiKey", api_key), ("aadToken", aad_token), ("tokenProvider", token_provider))
        if value is not None
    ]
    if len(given) > 1:
        raise ConfigurationError(f"give exactly one credential, not {' and '.join(given)}")
    if token_provider is not None:
        if not callable(token_provider):
            raise ConfigurationError("tokenProvider must be a callable returning a bearer token")
        return TokenProvider(token_provider)
    if aad_token is not None:
        return StaticToken(Secret(aad_token))
    key = api_key if api_key is not None else os.environ.get(ENV_API_KEY)
    if key:
        return ApiKey(Secret(key), as_bearer=style == "openai")
    if fabric is not None:
        return fabric.credential
    return NoCredential()


def resolve_client_config(
    *,
    deployment: str | None,
    endpoint: str | None,
    api_version: str | None,
    api_style: str,
    api_key: str | None,
    aad_token: str | None,
    token_provider: Any,
    headers: dict[str, str] | None,
    retry: RetryPolicy,
    limits: Limits,
    verify: bool | str,
    fail_on_error: bool,
) -> ClientConfig:
    """Build the executor's config on the driver: arguments, then environment variables, then Fabric."""
    if not deployment:
        raise ConfigurationError("deploymentName is not set: name the Azure OpenAI deployment (or model) to call")
    fabric = None
    url = endpoint or os.environ.get(ENV_ENDPOINT)
    if not url:
        fabric = detect_fabric()
        if fabric is None:
            raise ConfigurationError(
                f"no endpoint: pass endpoint=... or set {ENV_ENDPOINT} (inside Microsoft Fabric the built-in "
                "endpoint is used automatically)"
            )
        url = fabric.endpoint
    resolved = resolve_endpoint(url, api_style, api_version or os.environ.get(ENV_API_VERSION))
    credential = build_credential(api_key, aad_token, token_provider, resolved.style, fabric)
    extra = tuple((str(name), Secret(str(value))) for name, value in (headers or {}).items())
    if isinstance(verify, str) and not os.path.exists(verify):
        raise ConfigurationError(f"caBundle {verify!r} does not exist")
    return ClientConfig(
        endpoint=resolved,
        deployment=deployment,
        credential=credential,
        headers=extra,
        retry=retry,
        limits=limits,
        verify=verify,
        fail_on_error=fail_on_error,
    )
