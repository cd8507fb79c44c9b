"""Credentials: each turns into request headers on the executor, and none shows its secret.

``Secret`` wraps every key, token and secret header value so that ``repr``/``str`` never print it. The
credential kinds are small picklable objects shipped to executors inside the partition function's closure:
``ApiKey``, ``StaticToken``, ``TokenProvider`` (Entra ID via a callable), ``FabricToken`` and ``NoCredential``.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spark_aoai._core import constants as C

# Refresh a token this long before its expiry; for tokens without a readable expiry, refresh this often.


class Secret:
    """A string that never shows itself in ``repr``, ``str``, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Secret, (self._value,))


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (UNIX seconds), read without verifying it; None for opaque tokens."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
        return float(claims["exp"])
    except (ValueError, KeyError, TypeError):
        return None


class Credential:
    """Produces the auth headers of a request; may refresh itself after a 401."""

    kind = "none"

    def headers(self) -> dict[str, str]:
        return {}

    def refresh_after_unauthorized(self) -> bool:
        """Drop a cached token after a 401; True when a new attempt may now succeed."""
        return False

    def secrets(self) -> list[str]:
        """Every secret value this credential may put on the wire, for redaction."""
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class NoCredential(Credential):
    """No auth header (an emulator or a local model server that needs none)."""


@dataclass(frozen=True, repr=False)
class ApiKey(Credential):
    """An Azure API key sent as ``api-key``, or as ``Authorization: Bearer`` for OpenAI-style servers."""

    key: Secret
    as_bearer: bool = False
    kind = "api_key"

    def headers(self) -> dict[str, str]:
        if self.as_bearer:
            return {"Authorization": f"Bearer {self.key.reveal()}"}
        return {"api-key": self.key.reveal()}

    def secrets(self) -> list[str]:
        return [self.key.reveal()]

    def __repr__(self) -> str:
        return "ApiKey(key=Secret('********'))"


@dataclass(frozen=True, repr=False)
class StaticToken(Credential):
    """An Entra ID access token the user already holds, sent as ``Authorization: Bearer``."""

    token: Secret
    kind = "aad_token"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token.reveal()}"}

    def secrets(self) -> list[str]:
        return [self.token.reveal()]

    def __repr__(self) -> str:
        return "StaticToken(token=Secret('********'))"


class _RefreshingToken(Credential):
    """A token fetched by ``_fetch``, cached until shortly before it expires, dropped after a 401."""

    scheme = "Bearer"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self._seen: list[str] = []

    def _fetch(self) -> str:
        raise NotImplementedError

    def _current(self) -> str:
        with self._lock:
            now = time.time()
            if self._token is None or now >= self._refresh_at:
                token = self._fetch()
                expiry = token_expiry(token)
                lifetime = (expiry - now - C.REFRESH_MARGIN_SECONDS) if expiry else C.OPAQUE_TOKEN_LIFETIME_SECONDS
                self._token, self._refresh_at = token, now + max(0.0, lifetime)
                self._seen = [*self._seen, token][-4:]
            return self._token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"{self.scheme} {self._current()}"}

    def refresh_after_unauthorized(self) -> bool:
        with self._lock:
            self._token = None
        return True

    def secrets(self) -> list[str]:
        return list(self._seen)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_lock", "_token", "_seen"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._token, self._refresh_at, self._seen = None, 0.0, []


class TokenProvider(_RefreshingToken):
    """Entra ID through a callable returning a bearer token (e.g. azure-identity's ``get_bearer_token_provider``).

    The callable is shipped to the executors and called there: again before a JWT's ``exp`` (or every ten
    minutes for opaque tokens), and once more after a 401. It may also return an object with ``.token``.
    """

    kind = "token_provider"

    def __init__(self, provider: Callable[[], Any]) -> None:
        super().__init__()
        self.provider = provider

    def _fetch(self) -> str:
        value = self.provider()
        return str(getattr(value, "token", value))


class FabricToken(_RefreshingToken):
    """Microsoft Fabric's built-in auth: ``Authorization: MwcToken {token}`` from Fabric's token library.

    The token the driver fetched travels along; where the token library is importable (the driver, Fabric
    executors) a fresh one is fetched on expiry and after a 401.
    """

    kind = "fabric"
    scheme = "MwcToken"

    def __init__(self, workspace_id: str, artifact_id: str, initial_token: Secret | None = None) -> None:
        super().__init__()
        self.workspace_id, self.artifact_id = workspace_id, artifact_id
        self.initial_token = initial_token

    def _fetch(self) -> str:
        try:
            from trident_token_library_wrapper import PyTridentTokenLibrary

            return str(PyTridentTokenLibrary.get_mwc_token(self.workspace_id, self.artifact_id, 2))
        except ImportError:
            if self.initial_token is None:
                raise
            return self.initial_token.reveal()

    def secrets(self) -> list[str]:
        extra = [self.initial_token.reveal()] if self.initial_token else []
        return super().secrets() + extra

    def __repr__(self) -> str:
        return "FabricToken(token=Secret('********'))"


def _forms(secret: str) -> set[str]:
    """A secret as it may appear in a message: itself, escaped (repr, unicode_escape) or URL-quoted."""
    from urllib.parse import quote

    forms = {secret, repr(secret)[1:-1], secret.encode("unicode_escape").decode("ascii"), quote(secret, safe="")}
    return {form for form in forms if len(form) >= C.MIN_SECRET_CHARS}


def redact(text: str, secrets: list[str]) -> str:
    """Mask whole occurrences of each secret (and its escaped forms) in ``text`` with ``********``.

    Only secrets of at least ``C.MIN_SECRET_CHARS`` characters are masked, and only where they are not part of a
    longer word, so a short or common value does not garble the message around it.
    """
    import re

    forms = sorted({form for secret in secrets if secret for form in _forms(secret)}, key=len, reverse=True)
    if not forms:
        return text
    pattern = re.compile(r"(?<![A-Za-z0-9_\-])(?:" + "|".join(map(re.escape, forms)) + r")(?![A-Za-z0-9_\-])")
    return pattern.sub("********", text)
