"""Retry policy as small pure functions: what to retry, how long to wait.

Kept free of I/O and clocks so a table of cases tests it; the sender in ``_engine`` is the one loop that uses it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
# Our own codes for failures that got no usable HTTP answer; all are worth another attempt.
TRANSPORT_CODES = frozenset({"timeout", "connection_error", "malformed_response"})


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a request gets and how long to wait between them.

    ``base_delay`` doubles with each attempt up to ``max_delay``; the wait is then jittered by +-50%.
    A ``retry-after-ms`` or ``retry-after`` header from the service takes precedence.
    """

    max_attempts: int = 10
    base_delay: float = 0.5
    max_delay: float = 30.0


def should_retry(status: int | None, code: str | None) -> bool:
    """Whether a failed attempt deserves another: 408/409/429/5xx and transport failures, never other 4xx."""
    if status is None or status == 200:
        return code in TRANSPORT_CODES
    return status in RETRYABLE_STATUS


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the service asks us to wait: ``retry-after-ms`` first, then ``retry-after`` (seconds or a date).

    ``now`` (a UNIX time) is only needed for the HTTP-date form. Returns None when there is no usable header.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis)
            if value >= 0:
                return value / 1000.0
        except ValueError:
            pass
    seconds = lowered.get("retry-after")
    if seconds is None:
        return None
    try:
        value = float(seconds)
        return value if value >= 0 else None
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(seconds).timestamp()
    except (TypeError, ValueError):
        return None
    if now is None:
        return None
    return max(0.0, when - now)


def backoff_delay(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Exponential backoff with jitter after failed attempt number ``attempt`` (1-based)."""
    exponential = policy.base_delay * (2 ** max(0, attempt - 1))
    return min(policy.max_delay, exponential) * rng.uniform(0.5, 1.5)


def retry_delay(
    attempt: int, headers: Mapping[str, str], policy: RetryPolicy, rng: random.Random, now: float | None = None
) -> float:
    """The wait before the next attempt: the service's word when it gave one, else our backoff."""
    asked = parse_retry_after(headers, now)
    if asked is not None:
        return min(asked, policy.max_delay * 4)
    return backoff_delay(attempt, policy, rng)
