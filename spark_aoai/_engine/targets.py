"""The deployments a task's requests go to (``deployments=[...]``, or the one ``deploymentName``) and which one a
unit's next attempt goes to.

Each deployment has its own connection pool, rate controller (one deployment's 429s never slow the others), circuit
breaker (``_breaker``), quota rest and systemic fault. A unit starts on the first deployment and moves to the next
one when its own refused for quota (it rests for ``maxRetryAfterSeconds``), is down (a systemic fault: unknown
deployment, rejected credential, nothing listening), has its breaker open, or the unit used its ``maxAttempts``
there. It never goes back, unless every deployment after it is down. With one deployment there is nowhere to go,
so no breaker is asked.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from spark_aoai._client.config import ClientConfig
from spark_aoai._client.http import Transport
from spark_aoai._client.retry import should_retry
from spark_aoai._core import constants as C
from spark_aoai._core.contract import Route, RowError, Unit
from spark_aoai._engine.breaker import CLOSED, Breaker
from spark_aoai._engine.ratecontrol import RateController

_FAULT_CHARS = 300  # of each deployment's fault, in the error of a task whose deployments are all down


@dataclass
class Target:
    """One deployment a unit can go to, with its own URL, connection pool, pace, breaker and health."""

    config: ClientConfig
    url: str
    model: str | None  # the body's ``model`` on this deployment (None when the URL names it)
    transport: Transport
    controller: RateController
    breaker: Breaker = field(default_factory=Breaker)
    resting_until: float = 0.0  # refused for quota: not tried again before this (monotonic) time
    down: RowError | None = None  # its systemic fault: not tried again by this task
    answered: bool = False  # it gave this task an HTTP response (a refused connection is then not systemic)
    credential_worked: bool = False  # an attempt on it got past its credential

    def usable(self, now: float) -> bool:
        return self.down is None and self.resting_until <= now

    def where(self) -> str:
        return f"deployment {self.config.deployment!r} at {self.config.endpoint.host}"


class Targets:
    """Every deployment of a task, in the order they are tried; thread-safe."""

    def __init__(
        self, config: ClientConfig, route: Route, requests_per_second: float | None, tokens_per_second: float | None
    ) -> None:
        concurrency = config.limits.concurrency
        self.all = [
            Target(t, t.endpoint.url(route, t.deployment), t.endpoint.model_for(route, t.deployment),
                   Transport(t, concurrency), RateController(concurrency, requests_per_second, tokens_per_second))
            for t in config.targets
        ]  # fmt: skip
        self.failover = len(self.all) > 1
        self.lock = threading.Lock()

    def choose(self, unit: Unit, now: float) -> tuple[Target, bool] | None:
        """The deployment of the unit's next attempt, and whether that attempt is its breaker's probe.

        The first of the unit's own and later deployments that is usable and whose breaker lets a request go; when
        every breaker is open, the first usable one all the same. None when none is usable (down or resting).
        """
        with self.lock:
            usable = [index for index in self._order(unit) if self.all[index].usable(now)]
            if not usable:
                return None
            if self.failover:
                for index in usable:
                    verdict = self.all[index].breaker.allow(now)
                    if verdict is not None:
                        return self._assign(unit, index), verdict == "probe"
            return self._assign(unit, usable[0]), False

    def move_on(self, unit: Unit, now: float, closed_only: bool = False, calm_only: bool = False) -> bool:
        """Hand the unit to the next usable deployment (with ``closed_only``, one whose breaker is closed; with
        ``calm_only``, one that did not answer a 429 lately: a rate spill never lands on a deployment as limited);
        False when there is none."""
        with self.lock:
            for index in self._order(unit):
                candidate = self.all[index]
                healthy = not closed_only or candidate.breaker.state == CLOSED
                calm = not calm_only or not candidate.controller.refused_lately()
                if index != unit.target and candidate.usable(now) and healthy and calm:
                    self._assign(unit, index)
                    return True
            return False

    def leave(self, unit: Unit, target: Target, now: float) -> bool:
        """After a failed attempt on ``target``: when its breaker is open, hand the unit to the next deployment
        whose breaker is closed; False when it stays (no breaker open, or nowhere better to go)."""
        with self.lock:
            if not self.failover or target.breaker.state == CLOSED:
                return False
        return self.move_on(unit, now, closed_only=True)

    def record(self, target: Target, error: RowError | None, probe: bool) -> None:
        """Tell the deployment's breaker how an attempt on it ended (``error`` None: answered)."""
        if not self.failover:
            return
        failed = error is not None and error.status != 200 and should_retry(error.status, error.code)
        with self.lock:
            target.breaker.record(failed, time.monotonic(), probe)

    def rest(self, target: Target, seconds: float) -> None:
        with self.lock:
            target.resting_until = time.monotonic() + seconds

    def take_down(self, target: Target, fault: RowError) -> tuple[bool, RowError | None]:
        """Mark ``target`` down with its systemic ``fault``: whether it was up until now, and once every deployment
        is down, the task's error, which names each deployment and its fault (else None)."""
        with self.lock:
            was_up = target.down is None
            target.down = target.down or fault
        return was_up, self.all_down(fault)

    def all_down(self, last: RowError | None = None) -> RowError | None:
        """Once every deployment is down, the task's error (with the status and code of ``last``, else of the last
        deployment's fault), which names each deployment and its fault; else None."""
        with self.lock:
            faults = [(t, t.down) for t in self.all]
        if any(down is None for _, down in faults):
            return None
        parts = [f"{t.where()}: {d.code} (status {d.status}) {d.message[:_FAULT_CHARS]}" for t, d in faults if d]
        message = f"every deployment is down: {'; '.join(parts)}"[: C.MAX_MESSAGE_CHARS]
        last = last or faults[-1][1]
        return None if last is None else RowError(last.status, last.code, message, last.attempts, last.request_id)

    def cancel(self) -> None:
        for target in self.all:
            target.controller.cancel()

    def close(self) -> None:
        for target in self.all:
            target.transport.close()

    def _order(self, unit: Unit) -> list[int]:
        """The deployments the unit may go to, in order: its own and the later ones; when every one of those is
        down, the earlier ones."""
        ahead = list(range(unit.target, len(self.all)))
        if all(self.all[index].down is not None for index in ahead):
            return list(range(unit.target))
        return ahead

    def _assign(self, unit: Unit, index: int) -> Target:
        if index != unit.target:
            unit.target, unit.target_since = index, unit.attempts
        return self.all[index]
