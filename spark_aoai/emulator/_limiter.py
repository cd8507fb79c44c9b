"""The emulator's own rate budgets (Azure's requests- and tokens-per-minute), apart from the client's pacing.

Written as a theoretical-arrival-time limiter (GCRA) rather than the client's token bucket (``_bucket``), so a
mistake in one does not hide in the other: the budget is full again at ``full_at``; each charge pushes that
time later by ``cost / rate`` seconds, and a request may go when the budget holds its cost (at most the
capacity, so an oversized request waits for a full budget instead of forever).

    >>> budget = Budget(rate=10.0, capacity=20.0, now=0.0)
    >>> budget.wait(5.0, now=0.0)
    0.0
    >>> budget.charge(5.0, now=0.0); budget.remaining(now=0.0)
    15.0
    >>> budget.wait(25.0, now=0.0)  # clamped to the capacity: 5 units missing at 10 units/s
    0.5

``SlidingWindow`` is the other shape (Microsoft's aoai-api-simulator, and Azure's "evaluated over 1 or 10
seconds"): at most ``capacity`` units charged within any ``span`` seconds; a unit is back ``span`` seconds after
it was charged, and not before, so the remaining figure rises only as old charges leave the window.

    >>> window = SlidingWindow(capacity=3.0, span=10.0)
    >>> for t in (0.0, 1.0, 2.0):
    ...     window.charge(1.0, now=t)
    >>> window.remaining(now=5.0), window.wait(1.0, now=5.0)  # full until the charge at 0.0 leaves at 10.0
    (0.0, 5.0)
    >>> window.remaining(now=10.5)
    1.0
"""

from __future__ import annotations

from collections import deque


class Budget:
    """``capacity`` units refilled at ``rate`` units per second, full at time ``now``."""

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError(f"a rate budget needs a positive rate and capacity, not {rate}, {capacity}")
        self.rate, self.capacity, self.full_at = rate, capacity, now

    def remaining(self, now: float) -> float:
        """Units in the budget at ``now``."""
        return self.capacity - max(0.0, self.full_at - now) * self.rate

    def wait(self, cost: float, now: float) -> float:
        """Seconds from ``now`` until ``cost`` units (at most the capacity) are in the budget; 0 when they are."""
        short = min(cost, self.capacity) - self.remaining(now)
        return max(0.0, short / self.rate)

    def charge(self, cost: float, now: float) -> None:
        """Take ``cost`` units (at most the capacity) out at ``now``."""
        self.full_at = max(self.full_at, now) + min(cost, self.capacity) / self.rate


class SlidingWindow:
    """At most ``capacity`` units charged within any ``span`` seconds (same methods as :class:`Budget`)."""

    def __init__(self, capacity: float, span: float) -> None:
        if capacity <= 0 or span <= 0:
            raise ValueError(f"a sliding window needs a positive capacity and span, not {capacity}, {span}")
        self.capacity, self.span = capacity, span
        self.charges: deque[tuple[float, float]] = deque()  # (time, cost), oldest first
        self.used = 0.0

    def _expire(self, now: float) -> None:
        while self.charges and self.charges[0][0] <= now - self.span:
            self.used -= self.charges.popleft()[1]
        if not self.charges:
            self.used = 0.0  # no float drift left behind

    def remaining(self, now: float) -> float:
        """Units that may still be charged at ``now``."""
        self._expire(now)
        return self.capacity - self.used

    def wait(self, cost: float, now: float) -> float:
        """Seconds from ``now`` until enough old charges have left for ``cost`` (at most the capacity); 0 when
        they have."""
        self._expire(now)
        short = self.used + min(cost, self.capacity) - self.capacity
        for at, charged in self.charges:
            if short <= 1e-9:
                break
            short -= charged
            if short <= 1e-9:
                return max(0.0, at + self.span - now)
        return 0.0

    def charge(self, cost: float, now: float) -> None:
        """Take ``cost`` units (at most the capacity) at ``now``."""
        self._expire(now)
        cost = min(cost, self.capacity)
        self.charges.append((now, cost))
        self.used += cost
