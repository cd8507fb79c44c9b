"""Retry policy as small pure functions and values: what to retry, how long to wait, when to give up.

Kept free of I/O and real clocks (time is passed in) so tables of cases test it; the sender in ``_engine`` is
the one loop that uses it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from spark_aoai._core import constants as C
from spark_aoai._core.contract import ErrorCode, RowError, retryable_codes

# The one list of statuses worth another attempt (online, in the Batch API client, in ``retry_failed``):
# 408/409/429 and every 5xx.
RETRYABLE_STATUS = frozenset({408, 409, 429, *range(500, 600)})
# Our own codes for failures that got no usable HTTP answer; all are worth another attempt.
TRANSPORT_CODES = retryable_codes(later=False)
# A 429 with one of these codes says the capacity itself is used up, not that we are going too fast.
CAPACITY_CODES = frozenset({"CapacityLimitExceeded", "insufficient_quota", "quota_exceeded"})


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a request gets and how long to wait between them.

    ``base_delay`` doubles with each attempt up to ``max_delay``; the wait is then jittered by +-50%.
    A ``retry-after-ms`` or ``retry-after`` header from the service takes precedence, up to
    ``max_retry_after``: a longer one (a daily quota) is not waited for.
    """

    max_attempts: int = C.MAX_ATTEMPTS
    base_delay: float = C.BASE_DELAY_SECONDS
    max_delay: float = C.MAX_DELAY_SECONDS
    max_retry_after: float = C.MAX_RETRY_AFTER_SECONDS

    def schedule_seconds(self) -> float:
        """How long one request's retries take without jitter: the circuit breaker's patience."""
        return sum(min(self.max_delay, self.base_delay * 2**i) for i in range(max(0, self.max_attempts - 1)))


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


def retry_delay(attempt: int, retry_after: float | None, policy: RetryPolicy, rng: random.Random) -> float:
    """The wait before the next attempt: the service's word when it gave one (never beyond the cap)."""
    if retry_after is not None:
        return min(retry_after, policy.max_retry_after)
    return backoff_delay(attempt, policy, rng)


def quota_exhausted(error: RowError, retry_after: float | None, policy: RetryPolicy) -> bool:
    """A 429 that waiting will not cure soon: a capacity code, or a retry-after beyond ``max_retry_after``."""
    if error.status != 429:
        return False
    return error.code in CAPACITY_CODES or (retry_after is not None and retry_after > policy.max_retry_after)


def quota_error(error: RowError, retry_after: float | None, policy: RetryPolicy) -> RowError:
    asked = f"retry-after {retry_after:.0f} s" if retry_after is not None else "no retry-after"
    message = (
        f"{error.code}: {error.message} ({asked}; maxRetryAfterSeconds is {policy.max_retry_after:.0f} s, "
        "so this task stopped sending)"
    )
    return RowError(429, ErrorCode.QUOTA_EXCEEDED, message[: C.MAX_MESSAGE_CHARS], error.attempts, error.request_id)


def is_systemic(error: RowError, connect_failed: bool, any_response: bool, credential_failures: int = 0) -> bool:
    """A failure no other row will escape: bad credential, unknown deployment, nothing to connect to.

    401/403 (after the credential was refreshed once), any 404 (the URL is the same for every row), a
    connection that could not be opened (refused, DNS, TLS) while this task has not had a single response, and
    a credential that failed ``CREDENTIAL_FAILURES_SYSTEMIC`` times in a row for one request (with backoff
    between) before it ever produced a token in this task (like a wrong key; Spark may retry the task); one
    that fails between successes is retried.
    """
    if error.status in (401, 403, 404):
        return True
    if error.code == ErrorCode.TLS_ERROR:
        return not any_response
    if error.code == ErrorCode.CREDENTIAL_ERROR:
        return credential_failures >= C.CREDENTIAL_FAILURES_SYSTEMIC
    return connect_failed and not any_response


class CircuitBreaker:
    """Gives up on a partition whose requests all keep failing: open once no attempt succeeded for one retry
    schedule (``RetryPolicy.schedule_seconds``, at its longest jitter) and at least ``max_attempts`` attempts
    failed in a row. A small partition's requests run out of attempts first; a large one stops there instead of
    running every row's own schedule in waves of ``concurrency``."""

    def __init__(self, policy: RetryPolicy, now: float) -> None:
        self.patience = max(1.5 * policy.schedule_seconds(), 1.0)
        self.min_failures = policy.max_attempts
        self.failures = 0
        self.first_failure: float | None = None
        self.last_error: RowError | None = None
        self.opened: RowError | None = None

    def success(self) -> None:
        self.failures, self.first_failure = 0, None

    def failure(self, error: RowError, now: float) -> RowError | None:
        """Record a failed attempt; the error to give every remaining row once the breaker opens."""
        self.failures += 1
        self.last_error = error
        if self.first_failure is None:
            self.first_failure = now
        if self.opened is None and self.failures >= self.min_failures and now - self.first_failure >= self.patience:
            message = (
                f"stopped sending: {self.failures} attempts in a row failed over {now - self.first_failure:.0f} s; "
                f"the last: {error.message}"
            )
            self.opened = RowError(error.status, error.code, message[: C.MAX_MESSAGE_CHARS], error.attempts)
        return self.opened
