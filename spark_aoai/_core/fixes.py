"""What a systemic failure means and what to change: the first line of a ``SystemicError``.

A systemic failure is one every row would share (``_retry.is_systemic``): a refused credential, an unknown
deployment or path, a host that does not resolve, a connection refused, a certificate not trusted. The user
reads one line of it first, so that line says what failed, where, and which setting fixes it:

    the credential was refused (401) at endpoint host x.openai.azure.com, deployment 'gpt-4o': pass the right
    apiKey (or set AZURE_OPENAI_API_KEY), or for Entra ID a tokenProvider / aadToken ...

Pure: no pyspark, no network; the service's own code and message follow the fix in the same line.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from spark_aoai._core.pricing import PRICE_TABLE

# The error codes of a connection that failed (``_contract.ErrorCode`` values; kept as text: this module sits
# under ``exceptions``, which imports nothing of the engine).
_TLS, _CONNECTION, _TIMEOUT, _CREDENTIAL = "tls_error", "connection_error", "timeout", "credential_error"
_DNS_WORDS = (
    "name or service not known",
    "nameresolutionerror",
    "failed to resolve",
    "temporary failure in name resolution",
    "nodename nor servname",
    "getaddrinfo failed",
    "no address associated",
)
# Model names deployments are usually named after (the price table's): a misspelt deploymentName is offered the
# nearest.
KNOWN_MODELS = tuple(PRICE_TABLE)

CREDENTIAL_FIX = (
    "pass the right apiKey (or set AZURE_OPENAI_API_KEY), or for Entra ID a tokenProvider (or aadToken) whose "
    "token is for https://cognitiveservices.azure.com"
)


def deployment_in(where: str) -> str | None:
    """The (first) deployment named in a ``ClientConfig.describe()`` text."""
    found = re.search(r"deployment '([^']*)'", where)
    return found.group(1) if found else None


def what_and_fix(fields: Mapping[str, Any], where: str) -> tuple[str, str]:
    """(what failed, what to change) for a systemic error's fields (status, code, message)."""
    status, code = fields.get("status"), str(fields.get("code") or "")
    message = str(fields.get("message") or "").lower()
    if status in (401, 403):
        fix = CREDENTIAL_FIX
        if status == 403:
            fix += "; a 403 with a valid identity: give it the 'Cognitive Services OpenAI User' role, or allow this "
            fix += "network in the resource's firewall"
        return f"the credential was refused ({status})", fix
    if status == 404:
        if code == "DeploymentNotFound" or "deployment" in message:
            name = deployment_in(where)
            near = difflib.get_close_matches(name or "", KNOWN_MODELS, n=1, cutoff=0.6)
            hint = f"; did you mean {near[0]!r}?" if near and near[0] != name else ""
            return (
                f"deployment {name!r} was not found (404 {code or 'DeploymentNotFound'})",
                "set deploymentName to a deployment of this resource (Azure AI Foundry > Deployments lists them; "
                f"models are often deployed under their own names: {', '.join(KNOWN_MODELS[:8])}, ...){hint}",
            )
        return (
            "the service has no such path (404)",
            "set endpoint to the resource's base URL (https://<resource>.openai.azure.com, no /openai path) and "
            "check apiVersion / apiStyle",
        )
    if code == _TLS:
        return (
            "the TLS handshake failed (the endpoint's certificate is not trusted)",
            "set caBundle to the PEM file of the CA that signed it (a TLS-inspecting proxy's or a private CA), or "
            "check that endpoint is the https:// address of the resource",
        )
    if code == _CREDENTIAL:
        return "the credential could not produce a token", "check tokenProvider (it raised; see below), or pass apiKey"
    if code in (_CONNECTION, _TIMEOUT):
        if any(word in message for word in _DNS_WORDS):
            return (
                "the endpoint's host name does not resolve (DNS)",
                "check endpoint (or AZURE_OPENAI_ENDPOINT) for a typo; a private endpoint resolves only inside its "
                "network",
            )
        if "refused" in message:
            return (
                "the connection was refused (nothing listens at that host and port)",
                "check endpoint's host and port (or AZURE_OPENAI_ENDPOINT), and that the server or proxy is running",
            )
        return (
            "no connection could be opened",
            "check endpoint, the network path (firewall, proxy: HTTPS_PROXY) or raise connectTimeout",
        )
    return f"every request failed with {code} (status {status})", "see the service's message below"


def headline(fields: Mapping[str, Any], where: str) -> str:
    """The one line a user reads first: what failed, where, what to change, then the service's own words."""
    what, fix = what_and_fix(fields, where)
    said = f"{fields.get('code')} (status {fields.get('status')}): {fields.get('message')}"
    return f"{what} at {where}: {fix}. Service said: {said}"
