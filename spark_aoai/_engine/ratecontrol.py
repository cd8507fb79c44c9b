"""Adaptive rate control for one partition's senders.

``AdaptiveLimiter`` is the pure decision logic (time is passed in, nothing sleeps), table-tested without
Spark or HTTP. ``RateController`` wraps it with a lock and condition so sender threads can block on it.

The policy (it finds the limit rather than assuming the limiter's shape: continuous refill, sliding 1 s or
10 s windows, with or without limit headers; ``benchmarks/ratecontrol_sim.py`` replays it against each):

- Slow start: 8 requests in flight, one more per answer and at least doubled every 0.5 s by the clock (an 8 s
  model answers too late to open the window on), up to the configured maximum. It ends at a 429, or when the
  remaining budget falls under 75%, with pacing at the rate the partition was sending.
- Paced, requests in flight follow Little's law: twice the pace times the observed latency (never below it).
- A 429 pauses every sender of the partition until its ``retry-after-ms`` (else ``Retry-After``) has passed
  and cuts the pace: by 8% for a wait of a few ms, up to 15% for a second or more (one burst, one cut).
- While paced, ``x-ratelimit-remaining-requests``/``-tokens`` (over ``x-ratelimit-limit-*`` when sent, else the
  largest figure seen) steer the pace every 100 ms. Each sample is timed when its request reached the service;
  a line through the newest second of samples gives the budget's level and trend, and the level expected half a
  second ahead drives ``next_pace``, which steers it into a band just above empty (2-6% left) and holds it
  there. The band is the ceiling whatever the limiter's shape: a sliding window's level is one minus the share
  of its limit in use (2-6% left is 94-98% of it), and a token bucket's level only stays put at its refill
  rate. Above the band the pace grows in proportion to the spare budget (a partition that finished leaves its
  share and the others take it within a second or two), inside it by 1/20 of the additive step, below it it
  shrinks gently (the edge), and by up to 5% per adjustment when the trend says the budget runs out. Just after
  a 429, a level claiming plenty counts as 30% (it may be another budget's story). Every partition on a
  deployment sees the same budget, so all shrink by the same proportion below the band and add similar steps
  inside it: their shares converge (AIMD), slowly (over minutes: inside the band the pace barely moves, which
  is what ends the saw-tooth each 429 set off before, #26). Readings that arrive seconds after their admission
  (a slow model's) are not used; without fresh readings the pace probes upwards.
- Explicit budgets (``maxRequestsPerMinute``/``maxTokensPerMinute``, already divided by the tasks that run at
  once) are token buckets with one second of burst.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from spark_aoai._core import constants as C
from spark_aoai._engine.bucket import TokenBucket
from spark_aoai._engine.tokencredit import TokenCredit


def remaining_fraction(headers: Mapping[str, str], capacity: dict[str, float]) -> float | None:
    """The smaller of remaining/limit for requests and tokens; learns each budget's size in ``capacity``.

    The size is ``x-ratelimit-limit-*`` when the service sends it, else the largest remaining figure seen.
    Negative or unparsable figures (some APIs send -1 for "not reported") are ignored.
    """
    fractions = []
    for kind in ("requests", "tokens"):
        remaining = _header_number(headers, f"x-ratelimit-remaining-{kind}")
        if remaining is None:
            continue
        limit = _header_number(headers, f"x-ratelimit-limit-{kind}")
        if limit is not None and limit > 0:
            capacity[kind] = max(limit, remaining)
        else:
            capacity[kind] = max(capacity.get(kind, 0.0), remaining + 1.0)
        if capacity[kind] >= 4:
            fractions.append(min(1.0, remaining / capacity[kind]))
    return min(fractions) if fractions else None


def _header_number(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value >= 0 else None


def level_and_trend(samples: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares line through time-ordered (time, remaining fraction) samples: (level at the newest, slope/s).

    The samples are timed when the request reached the service (response time minus latency), so the trend is
    the budget's own: how fast every client of the deployment together is draining (<0) or leaving (>0) it.
    """
    if not samples:
        return None
    if len(samples) < 4 or samples[-1][0] - samples[0][0] < 0.2:
        return sum(f for _, f in samples) / len(samples), 0.0
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_f = sum(f for _, f in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    slope = sum((t - mean_t) * (f - mean_f) for t, f in samples) / var if var > 0 else 0.0
    return mean_f + slope * (samples[-1][0] - mean_t), slope


def next_pace(
    pace: float, fraction: float | None, step: float, confirmed: bool = True, distrusted: bool = False
) -> float:
    """One adjustment step of a paced rate (requests/s), given the budget fraction expected shortly.

    The level is steered into a band just above empty (``C.RATE_BAND_LOW``..``C.RATE_BAND_HIGH``) and held
    there. Inside the band the pace grows by ``C.RATE_BAND_STEP`` of ``step`` only, so partitions at the edge
    no longer saw-tooth (and drift apart) on every 429. Above it, spare budget: grow in proportion to the spare
    (a partition that finished leaves its share) plus ``C.RATE_SPARE_STEP`` of ``step``; just after a 429
    (``distrusted``) a level above ``C.RATE_DISTRUSTED_SPARE`` counts as that. Below it, shrink in proportion to
    the shortfall: gently at the edge (a 429 cuts the pace anyway, ``throttle_cut``), up to
    ``C.RATE_RUN_OUT_SHRINK`` when the trend says the budget runs out. Every partition sees the same budget, so
    all shrink by the same proportion and add similar steps: shares converge (AIMD), slowly.
    Without a fresh reading of the budget, probe upwards slowly (more carefully after a 429: ``confirmed``).
    """
    if fraction is None:  # no fresh reading of the budget: probe upwards, carefully after a 429
        return pace * (1.01 if confirmed else 1.0 + C.RATE_BLIND_GROWTH)
    if fraction > C.RATE_BAND_HIGH:
        spare = min(fraction, C.RATE_DISTRUSTED_SPARE) if distrusted else fraction
        grown = pace * C.RATE_SPARE_GROWTH * max(0.0, spare - C.RATE_BAND_HIGH)
        return pace + grown + step * C.RATE_SPARE_STEP
    if fraction >= C.RATE_BAND_LOW:
        return pace + step * C.RATE_BAND_STEP
    shortfall = min(C.RATE_RUN_OUT_SHRINK / C.RATE_BAND_SHRINK, (C.RATE_BAND_LOW - fraction) / C.RATE_BAND_LOW)
    return pace * (1.0 - C.RATE_BAND_SHRINK * shortfall)


def throttle_cut(retry_after: float) -> float:
    """The factor a paced rate is cut by on a 429: the longer the service asks to wait, the further over its
    budget the partitions were, so the deeper the cut (from ``1 - C.RATE_MIN_CUT`` for a few ms to
    ``C.RATE_THROTTLE_CUT``)."""
    return max(C.RATE_THROTTLE_CUT, 1.0 - C.RATE_MIN_CUT - C.RATE_CUT_PER_SECOND * retry_after)


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
        self.window = float(min(self.max_concurrency, C.RATE_INITIAL_WINDOW))
        self.in_flight = 0
        self.paused_until = 0.0
        self.pace: float | None = None
        self.next_slot = 0.0
        self.last_decrease = float("-inf")
        self.last_adjust = now
        self.capacity: dict[str, float] = {}
        self.samples: deque[tuple[float, float]] = deque()
        self.step = 0.0
        self.starts: deque[float] = deque()
        self.successes: deque[float] = deque()
        self.refusals: deque[float] = deque()
        self.latency: float | None = None
        self.started = now
        self.budgets: list[tuple[str, TokenBucket]] = []  # one second of burst each
        self.credit = TokenCredit()  # a request's tokens against the service's reported budget (#25)
        for kind, rate in (("requests", requests_per_second), ("tokens", tokens_per_second)):
            if rate:
                self.budgets.append((kind, TokenBucket.full(rate, max(1.0, rate), now)))

    def delay(self, now: float, tokens: int) -> float:
        """Seconds to wait before a request of ``tokens`` may start; 0 means it may start now."""
        if self.pace is None or self.latency is None:  # slow start also by the clock: a slow deployment
            # answers too late to grow on (and until its first answer, Little's law has no latency to size by)
            doublings = min(64.0, (now - self.started) / C.RATE_DOUBLING_SECONDS)  # a controller shared by a
            opened = C.RATE_INITIAL_WINDOW * 2.0**doublings  # long-lived worker must not overflow (2.0 ** 1024)
            self.window = max(self.window, min(float(self.max_concurrency), opened))
        credit = self.credit.wait(now, tokens, self.in_flight)
        if self.in_flight >= max(1, int(self.window)) or credit < 0:
            return -1.0  # wait for a response, not for a time
        waits = [self.paused_until - now, credit]
        if self.pace is not None:
            waits.append(self.next_slot - now)
        for kind, budget in self.budgets:
            budget.refill(now)
            waits.append(budget.wait_for(1.0 if kind == "requests" else float(tokens)))
        return max(0.0, *waits)

    def start(self, now: float, tokens: int) -> None:
        """Record that a request starts now (after ``delay`` returned 0)."""
        self.in_flight += 1
        self.credit.spend(tokens)
        self.starts.append(now)
        if self.pace is not None:
            self.next_slot = max(self.next_slot, now) + 1.0 / self.pace
        for kind, budget in self.budgets:
            budget.take(1.0 if kind == "requests" else float(tokens))

    def measured_rate(self, now: float) -> float:
        """Requests per second the service took over the last couple of seconds: those answered, or before any
        answer (a slow model) half of those started and not refused (what the service took then includes the
        budget it held at the start)."""
        for times in (self.starts, self.refusals, self.successes):
            while times and times[0] < now - C.RATE_MEASURE_SECONDS:
                times.popleft()
        span = min(C.RATE_MEASURE_SECONDS, max(now - self.started, 0.25))
        if self.successes:
            return len(self.successes) / span
        return 0.5 * max(0.0, len(self.starts) - len(self.refusals)) / span

    def sending_rate(self, at: float) -> float:
        """Requests this partition started in the second before ``at``: the pace it was going at."""
        return float(sum(1 for t in self.starts if at - 1.0 <= t <= at))

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
        self.credit.report(now, headers, status, retry_after)
        fraction = remaining_fraction(headers, self.capacity)
        if fraction is not None and (latency or 0.0) <= C.RATE_STALE_SECONDS:
            self._sample(now - (latency or 0.0), fraction)
        if status == 200:
            self.successes.append(now)
        if status == 429:
            self.refusals.append(now)
            self._throttled(now, retry_after if retry_after is not None else 1.0)
            return
        if status != 200:
            return
        if self.pace is None:
            if fraction is not None and fraction < C.RATE_SLOW_START_EXIT:
                self._start_pacing(now, max(C.RATE_MIN_PACE, self.sending_rate(now - (latency or 0.0))))
            else:
                self.window = min(float(self.max_concurrency), self.window + 1.0)
            return
        self.window = min(float(self.max_concurrency), max(self.window_floor(), self.window + 1.0 / self.window))
        if now - self.last_adjust >= C.RATE_ADJUST_SECONDS:
            confirmed = now - self.last_decrease < C.RATE_CONFIRM_SECONDS
            expected = self.expected_fraction(now, C.RATE_HORIZON)
            if expected is not None:  # the band sits one request above empty: a big one must still fit in it
                expected -= self.request_share()
            # just refused: "plenty left" is some other budget's story, so grow only additively
            distrusted = now - self.last_decrease < C.RATE_DISTRUST_SECONDS
            steps = min(10, int((now - self.last_adjust) / C.RATE_ADJUST_SECONDS))
            for _ in range(steps):
                self.pace = next_pace(self.pace, expected, self.step, confirmed, distrusted)
            self.pace = max(C.RATE_MIN_PACE, self.pace)
            self.last_adjust = now

    def request_share(self) -> float:
        """The share of the token budget the last request took (0 while the budget's size is not known): a pack
        of 50 rows, or a long shared instruction, can weigh more than the whole band."""
        capacity = self.capacity.get("tokens")
        return min(C.RATE_REQUEST_RESERVE_MAX, self.credit.last / capacity) if capacity else 0.0

    def expected_fraction(self, now: float, horizon: float = C.RATE_HORIZON) -> float | None:
        """The remaining budget fraction expected ``horizon`` seconds ahead, from the recent samples' trend."""
        # the newest second of samples, unless they are stale: none came for a while (a slow model's answers)
        while (
            self.samples
            and self.samples[0][0] < max(self.samples[-1][0], now - C.RATE_STALE_SECONDS) - C.RATE_TREND_SECONDS
        ):
            self.samples.popleft()
        fit = level_and_trend(self.samples)
        if fit is None:
            return None
        level, slope = fit
        return level + slope * horizon

    def _sample(self, at: float, fraction: float) -> None:
        if self.samples and at < self.samples[-1][0]:
            at = self.samples[-1][0]  # responses overtake each other; keep the series ordered
        self.samples.append((at, fraction))
        while self.samples[0][0] < at - C.RATE_TREND_SECONDS:  # bounded, also while unpaced
            self.samples.popleft()

    def _start_pacing(self, now: float, pace: float) -> None:
        self.pace = pace
        self.step = max(C.RATE_STEP_SHARE * pace, C.RATE_MIN_PACE * C.RATE_STEP_SHARE)
        self.last_adjust = now

    def _throttled(self, now: float, retry_after: float) -> None:
        self.paused_until = max(self.paused_until, now + retry_after)
        if now - self.last_decrease < max(retry_after, C.RATE_ADJUST_SECONDS):
            return  # one burst of 429s is one signal
        self.last_decrease = now
        if self.pace is None:
            self._start_pacing(now, max(C.RATE_MIN_PACE, self.measured_rate(now) * 0.9))
        else:
            self.pace = max(C.RATE_MIN_PACE, self.pace * throttle_cut(retry_after))
        self.window = max(self.window_floor(), self.window * 0.7)
        self.last_adjust = now

    def window_floor(self) -> float:
        """Enough requests in flight to keep the paced rate going at the observed latency (Little's law, x2).

        Pacing, not the window, is what holds a rate-limited partition back; a window shrunk below this would
        starve it and leave quota unused.
        """
        if self.pace is None or self.latency is None:
            return 1.0
        return min(float(self.max_concurrency), max(2.0, 2.0 * self.pace * self.latency))


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
        self.cancelled = False

    def cancel(self) -> None:
        """Wake every waiting sender and refuse new starts: the partition stopped sending."""
        with self.condition:
            self.cancelled = True
            self.condition.notify_all()

    def refused_lately(self) -> bool:
        """Whether the service refused a request of this controller with a 429 within ``FAILOVER_SPILL_SECONDS``."""
        with self.condition:
            refusals = self.limiter.refusals
            return bool(refusals) and self.clock() - refusals[-1] < C.FAILOVER_SPILL_SECONDS

    def acquire(self, tokens: int, deadline: float | None = None) -> bool:
        """Block until a request may start; False when ``deadline`` (a ``clock`` time) passes first, or once
        the controller is cancelled."""
        with self.condition:
            while True:
                now = self.clock()
                if self.cancelled or (deadline is not None and now >= deadline):
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
