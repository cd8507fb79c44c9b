"""A token bucket: the budget model of the client's pacing (the emulator has its own, ``emulator._limiter``).

A bucket holds up to ``capacity`` units and refills continuously at ``rate`` units per second. A request of
``cost`` units may go when the bucket holds that much, and then takes it out. A cost above the capacity is
clamped to the capacity: a request larger than the whole budget waits for a full bucket and empties it,
instead of waiting forever.

Standard library only, so the engine uses it where pyspark (or the rest of spark_aoai) is absent::

    >>> bucket = TokenBucket.full(rate=10.0, capacity=20.0, now=0.0)
    >>> bucket.wait_for(5.0)
    0.0
    >>> bucket.take(5.0); bucket.level
    15.0
    >>> bucket.wait_for(25.0)  # clamped to the capacity: 5 units missing at 10 units/s
    0.5
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TokenBucket"]


@dataclass
class TokenBucket:
    """``capacity`` units refilled at ``rate`` units per second; ``level`` units in it as of time ``updated``.

    Times come from whatever clock the caller uses (``time.monotonic()`` in practice, plain numbers in tests):
    :meth:`refill` brings the level up to ``now``; :meth:`wait_for` reads it and :meth:`take` lowers it.
    """

    rate: float
    capacity: float
    level: float
    updated: float

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.capacity <= 0:
            raise ValueError(f"a token bucket needs a positive rate and capacity, not {self.rate}, {self.capacity}")

    @classmethod
    def full(cls, rate: float, capacity: float, now: float) -> TokenBucket:
        """A bucket filled to ``capacity`` at time ``now``."""
        return cls(rate, capacity, capacity, now)

    def refill(self, now: float) -> None:
        """Add what flowed in since the last refill, up to the capacity (a clock that steps back adds nothing)."""
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def wait_for(self, cost: float) -> float:
        """Seconds until ``cost`` units (at most the capacity) are in the bucket; 0 when they are now."""
        missing = min(cost, self.capacity) - self.level
        return 0.0 if missing <= 0 else missing / self.rate

    def take(self, cost: float) -> None:
        """Take ``cost`` units (at most the capacity) out."""
        self.level -= min(cost, self.capacity)
