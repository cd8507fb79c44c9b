"""A circuit breaker per deployment, for failover (``deployments=[...]``): may a new request go to it now?

Pure state, time passed in, so tables of cases test it; ``_targets`` asks it, under its lock. The states:

- *closed*: every request may go. The deployment's last ``BREAKER_WINDOW`` outcomes within
  ``BREAKER_WINDOW_SECONDS`` are kept; once there are at least ``BREAKER_MIN_OUTCOMES`` of them and more than
  ``BREAKER_FAILURE_SHARE`` failed, it opens.
- *open*: no request may go (the sender hands it to the next deployment) for ``BREAKER_OPEN_SECONDS``; outcomes of
  requests that were in flight when it opened are not counted.
- *half-open*: then one request may go, as a probe. Its success closes the breaker (with an empty window), its
  failure opens it for another ``BREAKER_OPEN_SECONDS``. A probe with no outcome after ``BREAKER_OPEN_SECONDS`` (a
  slow one, or one handed elsewhere before it was sent) lets another probe go.

A failure is what says the deployment is unwell: a 5xx, 408, a 429 (a quota refusal rests the deployment on its
own), a timeout, a connection that failed. Any other answer (a 400 included) is a success: the deployment works.

    >>> breaker = Breaker()
    >>> for second in range(10):
    ...     breaker.record(True, now=float(second), probe=False)
    >>> breaker.allow(now=10.0) is None  # open: new requests go elsewhere
    True
    >>> breaker.allow(now=14.0)  # 5 s after it opened: one probe
    'probe'
    >>> breaker.record(False, now=14.5, probe=True); breaker.allow(now=14.6)
    'request'
"""

from __future__ import annotations

from collections import deque
from typing import Literal

from spark_aoai._core import constants as C

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"
Pass = Literal["request", "probe"]


class Breaker:
    """One deployment's circuit breaker: ``allow`` before a request, ``record`` its outcome."""

    def __init__(
        self,
        window: int = C.BREAKER_WINDOW,
        window_seconds: float = C.BREAKER_WINDOW_SECONDS,
        min_outcomes: int = C.BREAKER_MIN_OUTCOMES,
        failure_share: float = C.BREAKER_FAILURE_SHARE,
        open_seconds: float = C.BREAKER_OPEN_SECONDS,
    ) -> None:
        self.window_seconds, self.min_outcomes = window_seconds, min_outcomes
        self.failure_share, self.open_seconds = failure_share, open_seconds
        self.outcomes: deque[tuple[float, bool]] = deque(maxlen=window)  # (time, failed)
        self.state = CLOSED
        self.since = 0.0  # when it opened (open), or when its probe went (half-open)
        self.opened = 0  # how often it opened

    def allow(self, now: float) -> Pass | None:
        """``"request"`` when closed, ``"probe"`` for the one request that may test an open breaker, else None."""
        if self.state == CLOSED:
            return "request"
        if now - self.since >= self.open_seconds:
            self.state, self.since = HALF_OPEN, now
            return "probe"
        return None

    def record(self, failed: bool, now: float, probe: bool) -> None:
        """Learn from a finished request: whether it failed, and whether it was the probe ``allow`` let go."""
        if probe and self.state == HALF_OPEN:
            if failed:
                self._open(now)
            else:
                self.state = CLOSED
                self.outcomes.clear()
            return
        if self.state != CLOSED:
            return  # sent before it opened (or a probe given up on): what it says is already known
        self.outcomes.append((now, failed))
        while self.outcomes[0][0] < now - self.window_seconds:
            self.outcomes.popleft()
        failures = sum(failed for _, failed in self.outcomes)
        if len(self.outcomes) >= self.min_outcomes and failures > self.failure_share * len(self.outcomes):
            self._open(now)

    def _open(self, now: float) -> None:
        self.state, self.since = OPEN, now
        self.opened += 1
        self.outcomes.clear()
