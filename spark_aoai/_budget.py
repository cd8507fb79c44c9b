"""The spend cap (``maxTotalTokens``, ``maxCost``): one ledger file per run, shared by all of the run's tasks.

The ledger (``<statisticsDir>/<run>/budget.ledger``) holds what the run has been billed and what its requests
in flight have reserved, in tokens and in dollars. Before every attempt a task takes the file's lock
(``fcntl.flock``), reads it, and starts the request only while billed + reserved is under the cap; it then
reserves the request's estimate (its prompt plus the answer tokens it may take). When the answer comes, the
reservation is replaced by what the 200 body says was billed (an error bills nothing). So once the cap is
reached no request starts anywhere, and the job can pass the cap only by what requests already in flight
were billed beyond their reservations: at most the requests in flight at that moment.

Every task of the run must see the same file: in local mode (and a local Spark Connect server) the default
directory does; on a cluster, ``statisticsDir`` must name a path every executor shares and that honours
POSIX locks (the stage refuses a cap on a cluster without it).
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spark_aoai._contract import ErrorCode, RowError, Unit
from spark_aoai._engine import NoHooks
from spark_aoai._http import Outcome
from spark_aoai._pricing import Price
from spark_aoai._wire.usage import billed_usage

LEDGER_NAME = "budget.ledger"
_RECORD = struct.Struct("<4d")


@dataclass(frozen=True)
class BudgetFactory:
    """Shipped with the plan: the run's ledger and its caps (0: none)."""

    directory: str
    run_id: str
    max_tokens: int = 0
    max_cost: float = 0.0
    price: Price | None = None

    def open(self) -> BudgetHooks:
        return BudgetHooks(self, Path(self.directory) / self.run_id / LEDGER_NAME)


class Ledger:
    """Four float64s in a file (billed tokens, billed dollars, reserved tokens, reserved dollars), read and
    written in place under an exclusive lock; the file stays open for the task's life."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def update(self, change: Any) -> Any:
        """Call ``change(values)`` on the four values under the lock; what it leaves in the list is written
        back; its return value is returned. After ``close`` (a sender thread outliving its task) nothing is
        read or written and ``change`` sees a full budget of nothing."""
        if self.fd < 0:
            return change([0.0, 0.0, float("inf"), float("inf")])
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            raw = os.pread(self.fd, _RECORD.size, 0)
            values = list(_RECORD.unpack(raw)) if len(raw) == _RECORD.size else [0.0, 0.0, 0.0, 0.0]
            result = change(values)
            os.pwrite(self.fd, _RECORD.pack(*values), 0)
            return result
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def read(self) -> list[float]:
        return list(self.update(lambda values: list(values)))

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


class BudgetHooks(NoHooks):
    """One task's side of the ledger: a gate before each attempt, and the bill after it."""

    def __init__(self, spec: BudgetFactory, path: Path) -> None:
        self.spec = spec
        self.ledger = Ledger(path)
        self.lock = threading.Lock()
        self.reserved: dict[int, tuple[float, float]] = {}  # id(unit) -> its reservation in flight

    def _estimate(self, unit: Unit) -> tuple[float, float]:
        price = self.spec.price
        highest = max(price.input, price.output) if price is not None else 0.0
        return float(unit.tokens), unit.tokens * highest / 1e6

    def _over(self, values: list[float]) -> bool:
        tokens, cost = values[0] + values[2], values[1] + values[3]
        return bool(
            (self.spec.max_tokens and tokens >= self.spec.max_tokens)
            or (self.spec.max_cost and cost >= self.spec.max_cost)
        )

    def admit(self, unit: Unit) -> RowError | None:
        tokens, cost = self._estimate(unit)

        def reserve(values: list[float]) -> bool:
            if self._over(values):
                return False
            values[2] += tokens
            values[3] += cost
            return True

        with self.lock:
            if not self.ledger.update(reserve):
                return exhausted(self.spec)
            self.reserved[id(unit)] = (tokens, cost)
        return None

    def attempt(self, unit: Unit, outcome: Outcome, seconds: float) -> None:
        usage = billed_usage(outcome.body) if outcome.status == 200 else None
        billed_tokens = float((usage.total_tokens or 0) if usage is not None else 0)
        billed_cost = 0.0
        if usage is not None and self.spec.price is not None:
            billed_cost = self.spec.price.cost(
                usage.prompt_tokens or 0, usage.completion_tokens or 0, usage.cached_tokens or 0
            )
        with self.lock:
            tokens, cost = self.reserved.pop(id(unit), (0.0, 0.0))

        def settle(values: list[float]) -> None:
            values[0] += billed_tokens
            values[1] += billed_cost
            values[2] = max(0.0, values[2] - tokens)
            values[3] = max(0.0, values[3] - cost)

        self.ledger.update(settle)

    def close(self) -> None:
        """Give back what was reserved for attempts that never ran (the task stopped first)."""
        with self.lock:
            tokens = sum(t for t, _ in self.reserved.values())
            cost = sum(c for _, c in self.reserved.values())
            self.reserved.clear()
        if tokens or cost:

            def release(values: list[float]) -> None:
                values[2] = max(0.0, values[2] - tokens)
                values[3] = max(0.0, values[3] - cost)

            self.ledger.update(release)
        self.ledger.close()


def exhausted(spec: BudgetFactory) -> RowError:
    caps = []
    if spec.max_tokens:
        caps.append(f"maxTotalTokens={spec.max_tokens}")
    if spec.max_cost:
        caps.append(f"maxCost={spec.max_cost}")
    return RowError(
        None, ErrorCode.BUDGET_EXHAUSTED, f"the job reached its spend cap ({', '.join(caps)}); no request was sent"
    )
