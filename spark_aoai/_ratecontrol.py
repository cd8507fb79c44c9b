"""Adaptive rate control for one partition's senders.

``AdaptiveLimiter`` is the pure decision logic (time is passed in, nothing sleeps), table-tested without
Spark or HTTP. ``RateController`` wraps it with a lock and condition so sender threads can block on it.

The policy:

- A concurrency window starts at the configured maximum (a latency-bound job fills the pipe at once), grows by
  one per window of successes, and shrinks by 30% on a 429 (at most once per pause), but never below what the
  paced rate needs at the observed latency.
- A 429 pauses every sender of the partition until its ``retry-after-ms`` has passed, and switches on pacing at
  the rate the partition was actually getting through.
- While paced, ``x-ratelimit-remaining-requests``/``-tokens`` steer the rate every 100 ms (``next_pace``): a
  budget mostly unused speeds us up fast, a partly used one additively (partitions sharing a deployment
  converge to fair shares), a nearly empty one slows us down before the service says no. Pacing also starts
  without a 429 when the remaining budget falls under 10%.
- Explicit budgets (``maxRequestsPerMinute``/``maxTokensPerMinute``, already divided by the tasks that run at
  once) are token buckets with one second of burst.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

MEASURE_SECONDS = 2.0
ADJUST_SECONDS = 0.1
MIN_PACE = 0.2
ADDITIVE_STEP = 0.5


def remaining_fraction(headers: Mapping[str, str], capacity: dict[str, float]) -> float | None:
    """The smaller of remaining/capacity for requests and tokens; updates ``capacity`` with what it sees."""
    fractions = []
    for kind in ("requests", "tokens"):
        raw = headers.get(f"x-ratelimit-remaining-{kind}")
        if raw is None:
            continue
        try:
            remaining = float(raw)
        except ValueError:
            continue
        capacity[kind] = max(capacity.get(kind, 0.0), remaining + 1.0)
        if capacity[kind] >= 4:
            fractions.append(remaining / capacity[kind])
    return min(fractions) if fractions else None


def next_pace(pace: float, fraction: float | None) -> float:
    """One adjustment step of a paced rate (requests/s), given the service's remaining budget fraction.

    Plenty left: grow fast (x1.25). Some left: grow additively, so that partitions sharing a deployment
    converge to equal shares (the AIMD fairness argument). Little left: hold. Nearly none: shrink by 3-5%.
    Without rate-limit headers, probe upwards slowly.
    """
    if fraction is None:
        return pace * 1.01
    if fraction > 0.75:
        return pace * 1.25
    if fraction > 0.25:
        return pace + ADDITIVE_STEP
    if fraction >= 0.1:
        return pace
    if fraction > 0.0:
        return pace * 0.97
    return pace * 0.95


@dataclass
class _Budget:
    rate: float
    capacity: float
    level: float
    updated: float

    def wait(self, now: float, cost: float) -> float:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now
        missing = min(cost, self.capacity) - self.level
        return 0.0 if missing <= 0 else missing / self.rate

    def take(self, cost: float) -> None:
        self.level -= min(cost, self.capacity)


class AdaptiveLimiter:
    """Pure rate-control state: when may the next request go, and what a response teaches us."""

    def __init__(
        self,
        max_concurrency: int,
        requests_per_second: float | None = None,
        tokens_per_second: float | None = None,
        now: float = 0.0,
    ) -> None:
        self.max_concurrency = max(1, int(max_concurrency))
        self.window = float(self.max_concurrency)
        self.in_flight = 0
        self.paused_until = 0.0
        self.pace: float | None = None
        self.next_slot = 0.0
        self.last_decrease = float("-inf")
        self.last_adjust = now
        self.capacity: dict[str, float] = {}
        self.successes: deque[float] = deque()
        self.latency: float | None = None
        self.started = now
        self.budgets: list[tuple[str, _Budget]] = []
        if requests_per_second:
            self.budgets.append(
                (
                    "requests",
                    _Budget(requests_per_second, max(1.0, requests_per_second), max(1.0, requests_per_second), now),
                )
            )
        if tokens_per_second:
            self.budgets.append(
                ("tokens", _Budget(tokens_per_second, max(1.0, tokens_per_second), max(1.0, tokens_per_second), now))
            )

    def delay(self, now: float, tokens: int) -> float:
        """Seconds to wait before a request of ``tokens`` may start; 0 means it may start now."""
        if self.in_flight >= max(1, int(self.window)):
            return -1.0  # wait for a response, not for a time
        waits = [self.paused_until - now]
        if self.pace is not None:
            waits.append(self.next_slot - now)
        for kind, budget in self.budgets:
            waits.append(budget.wait(now, 1.0 if kind == "requests" else float(tokens)))
        return max(0.0, *waits)

    def start(self, now: float, tokens: int) -> None:
        """Record that a request starts now (after ``delay`` returned 0)."""
        self.in_flight += 1
        if self.pace is not None:
            self.next_slot = max(self.next_slot, now) + 1.0 / self.pace
        for kind, budget in self.budgets:
            budget.take(1.0 if kind == "requests" else float(tokens))

    def measured_rate(self, now: float) -> float:
        """Successful requests per second over the last couple of seconds."""
        while self.successes and self.successes[0] < now - MEASURE_SECONDS:
            self.successes.popleft()
        span = min(MEASURE_SECONDS, max(now - self.started, 0.25))
        return len(self.successes) / span

    def finish(
        self,
        now: float,
        status: int | None,
        headers: Mapping[str, str],
        retry_after: float | None,
        latency: float | None = None,
    ) -> None:
        """Learn from a finished attempt: its status (None when no response came), headers and latency."""
        self.in_flight = max(0, self.in_flight - 1)
        if status == 200 and latency is not None:
            self.latency = latency if self.latency is None else 0.8 * self.latency + 0.2 * latency
        fraction = remaining_fraction(headers, self.capacity)
        if status == 429:
            self._throttled(now, retry_after if retry_after is not None else 1.0)
            return
        if status != 200:
            return
        self.successes.append(now)
        self.window = min(float(self.max_concurrency), self.window + 1.0 / self.window)
        if self.pace is None:
            if fraction is not None and fraction < 0.1:
                self.pace = max(MIN_PACE, self.measured_rate(now))
                self.last_adjust = now
            return
        if now - self.last_adjust >= ADJUST_SECONDS:
            for _ in range(min(10, int((now - self.last_adjust) / ADJUST_SECONDS))):
                self.pace = next_pace(self.pace, fraction)
            self.pace = max(MIN_PACE, self.pace)
            self.last_adjust = now

    def _throttled(self, now: float, retry_after: float) -> None:
        self.paused_until = max(self.paused_until, now + retry_after)
        if now - self.last_decrease < max(retry_after, ADJUST_SECONDS):
            return  # one burst of 429s is one signal
        self.last_decrease = now
        measured = self.measured_rate(now)
        if self.pace is None:
            self.pace = max(MIN_PACE, measured * 0.9) if measured > 0 else max(MIN_PACE, self.window * 0.35)
        else:
            self.pace = max(MIN_PACE, min(self.pace, max(measured, MIN_PACE)) * 0.9)
        self.window = max(self.window_floor(), self.window * 0.7)
        self.last_adjust = now

    def window_floor(self) -> float:
        """Enough requests in flight to keep the paced rate going at the observed latency (Little's law, x2).

        Pacing, not the window, is what holds a rate-limited partition back; a window shrunk below this would
        starve it and leave quota unused.
        """
        if self.pace is None or self.latency is None:
            return 1.0
        return min(float(self.max_concurrency), max(1.0, 2.0 * self.pace * self.latency))


class RateController:
    """Thread-safe front of ``AdaptiveLimiter``: senders ``acquire`` before and ``release`` after a request."""

    def __init__(
        self,
        max_concurrency: int,
        requests_per_second: float | None = None,
        tokens_per_second: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.limiter = AdaptiveLimiter(max_concurrency, requests_per_second, tokens_per_second, clock())
        self.condition = threading.Condition()

    def acquire(self, tokens: int, deadline: float | None = None) -> bool:
        """Block until a request may start; False when ``deadline`` (a ``clock`` time) passes first."""
        with self.condition:
            while True:
                now = self.clock()
                if deadline is not None and now >= deadline:
                    return False
                wait = self.limiter.delay(now, tokens)
                if wait == 0.0:
                    self.limiter.start(now, tokens)
                    return True
                timeout = 0.5 if wait < 0 else wait
                if deadline is not None:
                    timeout = min(timeout, deadline - now)
                self.condition.wait(timeout)

    def release(
        self, status: int | None, headers: Mapping[str, str], retry_after: float | None, latency: float | None = None
    ) -> None:
        with self.condition:
            self.limiter.finish(self.clock(), status, headers, retry_after, latency)
            self.condition.notify_all()
