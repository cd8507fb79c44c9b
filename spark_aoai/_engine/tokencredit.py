"""What the service's reported token budget leaves for a partition's next request (issue #25).

A pack of 50 rows is one request of ~2,000 tokens: pacing requests per second cannot see that it weighs as much
as 50 single rows. ``TokenCredit`` charges each request its estimated tokens when it starts against the last
``x-ratelimit-remaining-tokens`` the service reported (each answer, a 429's included, refreshes it): another
starts only when what was started since that report, plus its own tokens, fits ``C.TOKEN_CREDIT_SHARE`` of it (other
partitions draw on the same budget). The budget refills: a 429's ``retry-after`` tells how fast (the refused
request's tokens over that wait), and the credit grows at that rate from the report on. With nothing in flight
and no refill rate learned yet, a request may always start, so a partition never waits for a report that
cannot come.
"""

from __future__ import annotations

from collections.abc import Mapping

from spark_aoai._core import constants as C


class TokenCredit:
    def __init__(self) -> None:
        self.remaining: float | None = None  # tokens left at the last report (None: never reported)
        self.reported_at = 0.0
        self.spent = 0.0  # estimated tokens of the requests started since
        self.last = 0.0  # the tokens of the last request started
        self.refill: float | None = None  # tokens/s the budget refills, learned from 429s

    def report(self, now: float, headers: Mapping[str, str], status: int | None, retry_after: float | None) -> None:
        raw = headers.get("x-ratelimit-remaining-tokens")
        try:
            value = float(raw) if raw is not None else -1.0
        except ValueError:
            value = -1.0
        if value < 0:
            return
        if status == 429 and retry_after and retry_after > 0 and self.last > value:
            self.refill = (self.last - value) / retry_after  # the latest: a budget's rate may change
        self.remaining, self.reported_at, self.spent = value, now, 0.0

    def spend(self, tokens: float) -> None:
        self.spent += tokens
        self.last = tokens

    def wait(self, now: float, tokens: float, in_flight: int) -> float:
        """0 when ``tokens`` fit now; else the seconds until they will, or -1 to wait for an answer."""
        if self.remaining is None:
            return 0.0
        grown = self.remaining + (self.refill or 0.0) * max(0.0, now - self.reported_at)
        short = self.spent + tokens - C.TOKEN_CREDIT_SHARE * grown
        if short <= 0:
            return 0.0
        if self.refill:  # with nothing in flight no report can come: the wait is bounded, the next answer corrects
            wait = short / (C.TOKEN_CREDIT_SHARE * self.refill)  # a refill rate learned from a near miss (tiny)
            return wait if in_flight else min(wait, C.TOKEN_CREDIT_IDLE_WAIT_SECONDS)
        return -1.0 if in_flight else 0.0
