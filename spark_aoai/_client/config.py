"""Connection settings resolved on the driver and shipped to executors as small frozen, picklable values."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from spark_aoai._client.auth import (
    ApiKey,
    Credential,
    FabricToken,
    NoCredential,
    Secret,
    StaticToken,
    TokenProvider,
)
from spark_aoai._client.retry import RetryPolicy
from spark_aoai._core import constants as C
from spark_aoai._core.constants import DEFAULT_API_VERSION, ENV_API_KEY, ENV_API_VERSION, ENV_ENDPOINT
from spark_aoai._core.contract import Route
from spark_aoai.exceptions import ConfigurationError

ApiStyle = Literal["azure", "azure_v1", "openai"]
API_STYLES = ("auto", "azure", "azure_v1", "openai")


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: a normalised base URL and the API's path style.

    - ``azure``: ``{base}/openai/deployments/{deployment}/{path}?api-version=...`` for deployment-scoped
      routes, ``{base}/openai/{path}?api-version=...`` for the others (files, batches)
    - ``azure_v1``: ``{base}/{path}`` with ``base`` ending in ``/openai/v1``, deployment in ``model``
    - ``openai``: ``{base}/{path}`` for OpenAI-compatible servers, model in ``model``
    """

    base_url: str
    style: ApiStyle
    api_version: str | None = None
    api_version_given: bool = False  # set explicitly (Param or OPENAI_API_VERSION), not the library's default

    def url(self, route: Route, deployment: str) -> str:
        """The URL of ``route``: base URL + route path (+ deployment segment and api-version on Azure)."""
        if self.style != "azure":
            return f"{self.base_url}/{route.path}"
        if route.v1 and not self.api_version_given:
            return f"{self.base_url}/openai/v1/{route.path}"
        version = f"?api-version={quote(self.api_version or DEFAULT_API_VERSION, safe='')}"
        if route.deployment_scoped:
            return f"{self.base_url}/openai/deployments/{quote(deployment, safe='')}/{route.path}{version}"
        return f"{self.base_url}/openai/{route.path}{version}"

    def model_for(self, route: Route, deployment: str) -> str | None:
        """What goes into the body's ``model``: the deployment, unless the URL already names it."""
        return None if self.style == "azure" and route.deployment_scoped else deployment

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc


def resolve_endpoint(endpoint: str, api_style: str = "auto", api_version: str | None = None) -> Endpoint:
    """Validate and normalise an endpoint URL; the style ``auto`` is read from the URL's path.

    >>> resolve_endpoint("https://res.openai.azure.com/").url(Route("chat/completions"), "gpt-4o")
    'https://res.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2025-04-01-preview'
    >>> resolve_endpoint("https://res.openai.azure.com/openai/v1/").style
    'azure_v1'
    """
    if api_style not in API_STYLES:
        raise ConfigurationError(f"apiStyle must be one of {', '.join(API_STYLES)}, got {api_style!r}")
    text = (endpoint or "").strip()
    parts = urlsplit(text)
    shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"  # never echo a query or userinfo
    if parts.query or parts.fragment:
        raise ConfigurationError(
            f"endpoint must not have a query or fragment (got {shown} with one, not shown: it may hold a key); "
            "give the key as apiKey=... and the api-version as apiVersion=..."
        )
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        raise ConfigurationError(
            f"endpoint must be an http(s) URL without credentials, such as https://<resource>.openai.azure.com, "
            f"got {shown!r}"
        )
    if "/openai/deployments/" in f"{parts.path}/":
        raise ConfigurationError(
            f"endpoint {shown!r} already names a deployment: give the resource URL "
            f"({parts.scheme}://{parts.netloc}) and the deployment as deploymentName"
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
    if style != "azure":
        return Endpoint(base, style)
    return Endpoint(base, style, api_version or DEFAULT_API_VERSION, api_version_given=bool(api_version))


@dataclass(frozen=True)
class Limits:
    """Concurrency, rate budgets and time limits for one partition's sender."""

    concurrency: int = C.CHAT_CONCURRENCY
    max_requests_per_minute: float | None = None
    max_tokens_per_minute: float | None = None
    concurrent_tasks: int = 1
    deadline_seconds: float | None = None
    connect_timeout: float = C.CONNECT_TIMEOUT_SECONDS
    read_timeout: float = C.REQUEST_TIMEOUT_SECONDS  # wall-clock limit of one attempt


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
    fail_on_systemic: bool = True
    # further deployments tried in order when this one refuses for quota or keeps failing (``deployments=``);
    # each has its own endpoint, deployment and credential, and this config's retry and limits
    failover: tuple[ClientConfig, ...] = ()

    @property
    def targets(self) -> tuple[ClientConfig, ...]:
        """Every deployment requests may go to, in the order they are tried."""
        return (self, *self.failover)

    def describe(self) -> str:
        """Where requests go, for error messages: host and deployment, never a credential or query."""
        places = [f"endpoint host {t.endpoint.host}, deployment {t.deployment!r}" for t in self.targets]
        return "; then ".join(places)

    def secrets(self) -> list[str]:
        own = self.credential.secrets() + [value.reveal() for _, value in self.headers]
        return own + [secret for target in self.failover for secret in target.secrets()]

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


def clean_secret(name: str, value: str) -> str:
    """A key or token without the whitespace a file or a copy adds; refused (not quoted) if it holds more."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string, got a {type(value).__name__}")
    cleaned = value.strip()
    if not cleaned:
        raise ConfigurationError(f"{name} is empty")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in cleaned):
        raise ConfigurationError(f"{name} contains whitespace or control characters inside it (value not shown)")
    return cleaned


def check_limits(limits: Limits, retry: RetryPolicy) -> None:
    """Refuse numbers out of range, naming the Param that set each."""
    positive: dict[str, float] = {
        "concurrency": limits.concurrency,
        "maxAttempts": retry.max_attempts,
        "connectTimeout": limits.connect_timeout,
        "requestTimeout": limits.read_timeout,
        "maxRetryAfterSeconds": retry.max_retry_after,
    }
    for name, number in positive.items():
        if not number > 0:
            raise ConfigurationError(f"{name} must be greater than 0, got {number!r}")
    optional: dict[str, float | None] = {
        "deadlineSeconds": limits.deadline_seconds,
        "maxRequestsPerMinute": limits.max_requests_per_minute,
        "maxTokensPerMinute": limits.max_tokens_per_minute,
    }
    for name, value in optional.items():
        if value is not None and not value > 0:
            raise ConfigurationError(f"{name} must be greater than 0 (or unset/0 for none), got {value!r}")
    if limits.concurrent_tasks < 1:
        raise ConfigurationError(f"concurrentTasks must be at least 1, got {limits.concurrent_tasks}")


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
        return StaticToken(Secret(clean_secret("aadToken", aad_token)))
    key = api_key if api_key is not None else os.environ.get(ENV_API_KEY)
    if key and key.strip():
        source = "apiKey" if api_key is not None else ENV_API_KEY
        return ApiKey(Secret(clean_secret(source, key)), as_bearer=style == "openai")
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
    fail_on_systemic: bool = True,
) -> ClientConfig:
    """Build the executor's config on the driver: arguments, then environment variables, then Fabric."""
    if not deployment:
        raise ConfigurationError("deploymentName is not set: name the Azure OpenAI deployment (or model) to call")
    check_limits(limits, retry)
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
    extra = tuple(
        (str(name), Secret(clean_secret(f"headers[{name!r}]", str(value)))) for name, value in (headers or {}).items()
    )
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
        fail_on_systemic=fail_on_systemic,
    )
