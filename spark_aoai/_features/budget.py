"""The spend cap (``maxTotalTokens``, ``maxCost``): one ledger file per run, shared by all of the run's tasks.

The ledger (``<statisticsDir>/<run>/budget.ledger``) holds what the run has been billed, what its requests in
flight are expected to be billed, and what the answered requests had been estimated at (so billed / estimated
is what a request really costs against its worst-case estimate: its prompt plus every answer token it may
take). Before every attempt a task takes the file's lock (``fcntl.flock``) and reads it; the request starts
when billed + in flight + its own expected cost stays within the cap, and is then counted in flight at its
expected cost (its estimate times that ratio; the estimate itself until the run's first answer, and when
even that does not fit, one request goes alone to find out). When it would not fit but other requests are in
flight, it waits for them to settle (they may cost less than expected; a wait is bounded by
``BUDGET_SETTLE_SECONDS``, the deadline and the task's stop, and after one that timed out the task waits no
more); when nothing is in flight it is refused (``budget_exhausted``). The answer replaces the in-flight
figure with what the 200 body says was billed (an error bills nothing). So a cap is spent to within one
request's size, and the job passes it by at most what the requests in flight at that moment were billed
beyond their expected cost.

Every task of the run must see the same file: in local mode (and a local Spark Connect server) the default
directory does; on a cluster, ``statisticsDir`` must name a path every executor shares and that honours
POSIX locks (the stage refuses a cap on a cluster without it).
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spark_aoai._client.http import Outcome
from spark_aoai._core import constants as C
from spark_aoai._core.contract import ErrorCode, RowError, Unit
from spark_aoai._core.pricing import Price
from spark_aoai._engine.hooks import NoHooks
from spark_aoai._wire.usage import billed_usage

LEDGER_NAME = "budget.ledger"
# billed tokens, billed dollars, in-flight tokens, in-flight dollars, estimated tokens of the answered
# requests, estimated dollars of the answered requests, attempts in flight
_RECORD = struct.Struct("<7d")
_FIELDS = _RECORD.size // 8
BILLED, IN_FLIGHT, ANSWERED_ESTIMATE = 0, 2, 4  # each the index of a (tokens, dollars) pair
ATTEMPTS = 6  # a count: floating sums of what is in flight never come back to exactly 0


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
    """Seven float64s in a file (``_RECORD``), read and written in place under an exclusive lock; the file stays
    open for the task's life."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self.threads = threading.Lock()

    def update(self, change: Any) -> Any:
        """Call ``change(values)`` on the ledger's values under the lock; what it leaves in the list is written
        back; its return value is returned. After ``close`` (a sender thread outliving its task) nothing is
        read or written and ``change`` sees a ledger with no room (and nothing to learn from)."""
        with self.threads:  # flock excludes other processes, not this one's threads sharing the descriptor
            if self.fd < 0:
                return change([0.0, 0.0, float("inf"), float("inf"), float("inf"), float("inf"), 0.0])  # no room
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            try:
                raw = os.pread(self.fd, _RECORD.size, 0)
                values = list(_RECORD.unpack(raw)) if len(raw) == _RECORD.size else [0.0] * _FIELDS
                result = change(values)
                os.pwrite(self.fd, _RECORD.pack(*values), 0)
                return result
            finally:
                fcntl.flock(self.fd, fcntl.LOCK_UN)

    def read(self) -> list[float]:
        return list(self.update(lambda values: list(values)))

    def close(self) -> None:
        with self.threads:
            fd, self.fd = self.fd, -1
            if fd >= 0:
                os.close(fd)


class BudgetHooks(NoHooks):
    """One task's side of the ledger: a gate before each attempt, and the bill after it."""

    def __init__(self, spec: BudgetFactory, path: Path) -> None:
        self.spec = spec
        self.ledger = Ledger(path)
        self.lock = threading.Lock()
        self.gave_up_waiting = False  # a wait for requests in flight timed out: no more waits in this task
        # id(unit) -> (estimate, expected), each (tokens, dollars), of its attempt in flight
        self.in_flight: dict[int, tuple[tuple[float, float], tuple[float, float]]] = {}

    def _estimate(self, unit: Unit) -> tuple[float, float]:
        """The attempt's worst case: its prompt estimate plus every answer token it may take."""
        price = self.spec.price
        highest = max(price.input, price.output) if price is not None else 0.0
        return float(unit.tokens), unit.tokens * highest / 1e6

    def admit(self, unit: Unit, until: float | None, stop: threading.Event) -> RowError | None:
        estimate = self._estimate(unit)
        waited_until = time.monotonic() + (0.0 if self.gave_up_waiting else C.BUDGET_SETTLE_SECONDS)
        if until is not None:
            waited_until = min(waited_until, until)
        while True:
            verdict = self.ledger.update(lambda values: _reserve(self.spec, values, estimate))
            if isinstance(verdict, tuple):
                with self.lock:
                    self.in_flight[id(unit)] = (estimate, verdict)
                return None
            if verdict == _REFUSED or time.monotonic() >= waited_until:
                if verdict == _WAIT and not stop.is_set():
                    # what is in flight did not settle in time: perhaps a task that died held it; this task
                    # waits no more, so a stale figure costs at most one wait per task
                    self.gave_up_waiting = True
                return exhausted(self.spec)
            if stop.wait(C.BUDGET_POLL_SECONDS):  # others are in flight: what they cost decides
                return exhausted(self.spec)

    def attempt(self, unit: Unit, outcome: Outcome, seconds: float) -> None:
        usage = billed_usage(outcome.body) if outcome.status == 200 else None
        billed = (0.0, 0.0)
        if usage is not None:
            cost = 0.0
            if self.spec.price is not None:
                cost = self.spec.price.cost(usage.prompt_tokens or 0, usage.completion_tokens or 0,
                                            usage.cached_tokens or 0)  # fmt: skip
            billed = (float(usage.total_tokens or 0), cost)
        with self.lock:
            held = self.in_flight.pop(id(unit), None)
        estimate, expected = held or ((0.0, 0.0), (0.0, 0.0))
        answered = estimate if usage is not None else (0.0, 0.0)

        def settle(values: list[float]) -> None:
            for i in (0, 1):
                values[BILLED + i] += billed[i]
                values[IN_FLIGHT + i] = max(0.0, values[IN_FLIGHT + i] - expected[i])
                values[ANSWERED_ESTIMATE + i] += answered[i]
            if held is not None:
                values[ATTEMPTS] = max(0.0, values[ATTEMPTS] - 1)

        self.ledger.update(settle)

    def withdraw(self, unit: Unit) -> None:
        """The admitted attempt was not sent after all: it is no longer in flight."""
        with self.lock:
            held = self.in_flight.pop(id(unit), None)
        if held is not None:
            self.ledger.update(lambda values: _release(values, [held]))

    def close(self) -> None:
        """Give back what was counted in flight for attempts that never ended (the task stopped first)."""
        with self.lock:
            held = list(self.in_flight.values())
            self.in_flight.clear()
        if held:
            self.ledger.update(lambda values: _release(values, held))
        self.ledger.close()


_REFUSED, _WAIT = "refused", "wait"


def _release(values: list[float], held: list[tuple[tuple[float, float], tuple[float, float]]]) -> None:
    """Take attempts that ended unsent out of the in-flight figures."""
    for i in (0, 1):
        values[IN_FLIGHT + i] = max(0.0, values[IN_FLIGHT + i] - sum(expected[i] for _, expected in held))
    values[ATTEMPTS] = max(0.0, values[ATTEMPTS] - len(held))


def expected_cost(values: list[float], estimate: tuple[float, float]) -> tuple[float, float]:
    """What an attempt estimated at ``estimate`` is expected to be billed: the estimate scaled by what the
    run's answered requests were billed against their estimates (the estimate itself before any answer)."""
    out = []
    for i in (0, 1):
        answered = values[ANSWERED_ESTIMATE + i]
        ratio = min(1.0, values[BILLED + i] / answered) if answered > 0 else 1.0
        out.append(estimate[i] * ratio)
    return out[0], out[1]


def _reserve(spec: BudgetFactory, values: list[float], estimate: tuple[float, float]) -> tuple[float, float] | str:
    """Count the attempt in flight and return its expected cost when it fits under the caps; else whether to
    wait (others are in flight) or refuse (nothing in flight can free room)."""
    expected = expected_cost(values, estimate)
    caps = (spec.max_tokens, spec.max_cost)
    fits = all(not cap or values[BILLED + i] + values[IN_FLIGHT + i] + expected[i] <= cap for i, cap in enumerate(caps))
    unknown = values[ATTEMPTS] < 1 and not values[ANSWERED_ESTIMATE] and not values[ANSWERED_ESTIMATE + 1]
    if not fits and unknown and all(not cap or values[BILLED + i] < cap for i, cap in enumerate(caps)):
        fits = True  # no answer yet says what a request really costs: one goes alone, to find out
    if fits:
        values[IN_FLIGHT] += expected[0]
        values[IN_FLIGHT + 1] += expected[1]
        values[ATTEMPTS] += 1
        return expected
    return _WAIT if values[ATTEMPTS] >= 1 else _REFUSED


def exhausted(spec: BudgetFactory) -> RowError:
    caps = []
    if spec.max_tokens:
        caps.append(f"maxTotalTokens={spec.max_tokens}")
    if spec.max_cost:
        caps.append(f"maxCost={spec.max_cost}")
    message = f"the job reached its spend cap ({', '.join(caps)}): this row's request would pass it, so it was not sent"
    return RowError(None, ErrorCode.BUDGET_EXHAUSTED, message)
