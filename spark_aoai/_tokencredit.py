"""What the service's reported token budget leaves for a partition's next request (issue #25).

A pack of 50 rows is one request of ~2,000 tokens: pacing requests per second cannot see that it weighs as much
as 50 single rows. ``TokenCredit`` charges each request its estimated tokens when it starts against the last
``x-ratelimit-remaining-tokens`` the service reported (each answer, a 429's included, refreshes it): while
requests are in flight, another starts only when what was started since that report, plus its own tokens, fits
``SHARE`` of it (other partitions draw on the same budget). With nothing in flight a request may always start,
so a partition never waits for a report that cannot come.
"""

from __future__ import annotations

from collections.abc import Mapping

SHARE = 0.5


class TokenCredit:
    def __init__(self) -> None:
        self.remaining: float | None = None  # tokens left at the last report (None: never reported)
        self.spent = 0.0  # estimated tokens of the requests started since

    def report(self, headers: Mapping[str, str]) -> None:
        raw = headers.get("x-ratelimit-remaining-tokens")
        try:
            value = float(raw) if raw is not None else -1.0
        except ValueError:
            value = -1.0
        if value >= 0:
            self.remaining, self.spent = value, 0.0

    def spend(self, tokens: float) -> None:
        self.spent += tokens

    def fits(self, tokens: float) -> bool:
        return self.remaining is None or self.spent + tokens <= SHARE * self.remaining
