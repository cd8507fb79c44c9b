"""The emulator's own rate budget (Azure's requests- and tokens-per-minute), apart from the client's pacing.

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
"""

from __future__ import annotations


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
