"""The emulator's settings: rate limits, faults and the API key, as small dataclasses with every default here.

``Settings`` travels as JSON to ``POST /_emulator/config`` (:func:`settings_to_dict` / :meth:`Settings.from_dict`),
so a test changes a running emulator, in this process or a child, the same way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RateLimit:
    """Azure-like budgets per deployment, refilled continuously and evaluated over ``window_seconds``.

    ``requests_per_minute=2400, window_seconds=1`` allows 40 requests/s with a burst of one second's worth.
    """

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    window_seconds: float = 1.0


@dataclass
class Faults:
    """Faults the emulator injects; all off by default. Rates are probabilities per request."""

    latency_ms: float = 0.0
    jitter: float = 0.0
    error_500_rate: float = 0.0
    error_503_rate: float = 0.0
    drop_rate: float = 0.0
    malformed_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 30.0
    content_filter_marker: str | None = None
    finish_content_filter_marker: str | None = None
    context_length_marker: str | None = None
    max_input_tokens: int | None = None
    shuffle_embeddings: bool = False
    seed: int | None = None


@dataclass
class Settings:
    """Everything that shapes the emulator's answers; replaced whole by ``/_emulator/config``."""

    api_key: str | None = None
    rate_limit: RateLimit = field(default_factory=RateLimit)
    faults: Faults = field(default_factory=Faults)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        return cls(
            api_key=data.get("api_key"),
            rate_limit=RateLimit(**(data.get("rate_limit") or {})),
            faults=Faults(**(data.get("faults") or {})),
        )


def settings_to_dict(settings: Settings) -> dict[str, Any]:
    """The JSON form ``/_emulator/config`` takes."""
    return dataclasses.asdict(settings)
