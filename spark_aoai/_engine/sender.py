"""The sender: threads over one pooled session per deployment, each gated by its deployment's ``RateController``;
the one retry loop.

Each unit is sent, retried and resolved here. Whatever happens, every row of every unit ends with a value or an
error: a unit is never dropped, a wait never exceeds its bound (``maxRetryAfterSeconds``, the per-attempt
``requestTimeout``, ``deadlineSeconds``), and a partition whose requests all keep failing stops sending
(``CircuitBreaker``); a systemic failure (bad key, unknown deployment, nothing listening) aborts the task.

With failover (``ClientConfig.failover``, ``_targets``) each deployment has its own rate controller and circuit
breaker. A unit moves to the next deployment when its own refused for quota, is systemically down, has its breaker
open, or the unit used its ``maxAttempts`` there; a deployment that refused for quota rests for
``maxRetryAfterSeconds``. A quota refusal never pauses a rate controller: once every deployment rests, the task
stops sending; a systemic fault stops the task only once every deployment is down.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from spark_aoai._client.config import ClientConfig
from spark_aoai._client.http import Outcome, clean_message
from spark_aoai._client.retry import (
    CircuitBreaker,
    is_systemic,
    parse_retry_after,
    quota_error,
    quota_exhausted,
    retry_delay,
    should_retry,
)
from spark_aoai._core import constants as C
from spark_aoai._core.contract import (
    ErrorCode,
    MalformedResponseError,
    Route,
    RowError,
    TaskOperation,
    Unit,
    add_usage,
)
from spark_aoai._engine.hooks import Hooks
from spark_aoai._engine.ratecontrol import RateController
from spark_aoai._engine.targets import Target, Targets
from spark_aoai._wire.usage import billed_usage

logger = logging.getLogger("spark_aoai")


class _Slot:
    """One started request's place in the rate controller, given back exactly once."""

    def __init__(self) -> None:
        self.controller: RateController | None = None

    def release(
        self, status: int | None, headers: Mapping[str, str], paused: float | None, latency: float | None = None
    ) -> None:
        controller, self.controller = self.controller, None
        if controller is not None:
            controller.release(status, headers, paused, latency)


class Sender:
    """Sender threads over one pooled session per deployment: the one retry loop of the library."""

    def __init__(
        self, config: ClientConfig, operation: TaskOperation, route: Route, deadline: float | None, hooks: Hooks
    ) -> None:
        limits = config.limits
        self.config, self.operation, self.deadline, self.hooks = config, operation, deadline, hooks
        shares = max(1, limits.concurrent_tasks)
        rps = limits.max_requests_per_minute / 60.0 / shares if limits.max_requests_per_minute else None
        tps = limits.max_tokens_per_minute / 60.0 / shares if limits.max_tokens_per_minute else None
        self.targets = Targets(config, route, rps, tps)
        self.queue: queue.Queue[Unit | None] = queue.Queue()
        self.random = random.Random()
        self.threads: list[threading.Thread] = []
        self.closing = threading.Event()
        self.lock = threading.Lock()
        self.breaker = CircuitBreaker(config.retry, time.monotonic())
        self.stopped: RowError | None = None  # set once: every unit still to run gets this error
        self.systemic: RowError | None = None  # set with ``stopped`` when the task must fail

    # -- lifecycle ------------------------------------------------------------------------------------------

    def submit(self, unit: Unit) -> None:
        if len(self.threads) < self.config.limits.concurrency:
            thread = threading.Thread(target=self._work, name=f"aoai-sender-{len(self.threads)}", daemon=True)
            self.threads.append(thread)
            thread.start()
        self.queue.put(unit)

    def close(self) -> None:
        """Stop sending: units not yet started are dropped (their batch is no longer wanted), then threads end."""
        self.closing.set()
        self.targets.cancel()
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        for _ in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join(timeout=5)
        self.targets.close()

    def stop(self, error: RowError, systemic: bool = False) -> None:
        """From now on, every unit that has not got its answer ends with ``error`` instead of being sent."""
        with self.lock:
            if self.stopped is None:
                self.stopped = error
                if systemic:
                    self.systemic = error
                self.targets.cancel()
                self.closing.set()  # wakes senders sleeping out a backoff
                logger.warning("spark_aoai: this task stopped sending: %s %s", error.code, error.message)

    # -- the loop -------------------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            unit = self.queue.get()
            if unit is None:
                return
            try:
                self._run(unit)
            except Exception as exc:  # a bug must cost rows an error value, never a hung or lost partition
                logger.error("spark_aoai: unexpected error while sending a request: %s",
                             self._clean(traceback.format_exc()))  # fmt: skip
                message = f"internal error: {type(exc).__name__}: {exc}"
                self._fail(unit, RowError(None, ErrorCode.INTERNAL_ERROR, self._clean(message)))

    def _clean(self, message: str) -> str:
        return clean_message(self.config, message)

    def _fail(self, unit: Unit, error: RowError, request_id: str | None = None) -> None:
        rows = unit.results.unresolved(unit.rows)
        if rows:
            unit.results.fail(rows, error.with_attempts(unit.attempts, request_id))
            if unit.billed is not None:
                unit.results.add_billed(rows, unit.billed)

    def _deadline_error(self) -> RowError:
        return RowError(None, ErrorCode.TIMEOUT, "the deadline (deadlineSeconds) passed before this row got an answer")

    def _attempt_limit(self) -> float | None:
        limit = self.config.limits.read_timeout
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                return None
            limit = min(limit, left)
        return limit

    def _start(self, unit: Unit, slot: _Slot) -> tuple[Target, bool] | None:
        """Take a slot of the rate controller of the unit's deployment: that deployment and whether the attempt is
        its breaker's probe, or None once the unit is resolved. With failover, a unit waiting for its slot looks
        again every ``FAILOVER_RECHECK_SECONDS`` for the deployment it should go to (a breaker opened, a rest began).
        """
        while True:
            now = time.monotonic()
            chosen = self.targets.choose(unit, now)
            if chosen is None or self.stopped is not None:
                resting = RowError(429, ErrorCode.QUOTA_EXCEEDED, "every deployment refused for quota just now")
                self._fail(unit, self.stopped or self._all_down() or resting)
                return None
            controller, until = chosen[0].controller, self.deadline
            if self.targets.failover:
                recheck = now + C.FAILOVER_RECHECK_SECONDS
                until = recheck if until is None else min(until, recheck)
            if controller.acquire(unit.tokens, until):
                slot.controller = controller
                return chosen
            late = self.deadline is not None and time.monotonic() >= self.deadline
            if self.stopped is not None or self.closing.is_set() or late:
                self._fail(unit, self.stopped or self._deadline_error())
                return None
            if self.targets.failover and controller.refused_lately():  # rate-limited: the next one may take it
                self.targets.move_on(unit, time.monotonic(), closed_only=True, calm_only=True)

    def _payload(self, unit: Unit, target: Target) -> dict[str, Any]:
        if target is self.targets.all[0] or unit.payload.get("model") in (None, target.model):
            return unit.payload
        return {**unit.payload, "model": target.model}

    def _run(self, unit: Unit) -> None:
        while True:
            if self.stopped is not None or self.closing.is_set():
                self._fail(unit, self.stopped or self._deadline_error())
                return
            gate = getattr(self.operation, "gate", None)  # packing: a task's first pack probes, the others wait
            if gate is not None and unit.attempts == 0:
                send, more = gate(unit, self.deadline, self.closing)
                for part in more:
                    self.queue.put(part)
                if not send:
                    return
                if self.stopped is not None or self.closing.is_set():
                    continue
            refused = self.hooks.admit(unit, self.deadline, self.closing)
            if refused is not None:  # a task stopped, or a deadline passed, while it waited: that is the reason
                late = self.deadline is not None and time.monotonic() >= self.deadline
                self._fail(unit, self.stopped or (self._deadline_error() if late else refused))
                return
            slot = _Slot()
            try:
                chosen = self._start(unit, slot)
                delay = None if chosen is None else self._attempt(unit, *chosen, slot)
            finally:
                slot.release(None, {}, None)  # whatever the attempt raised, its slot is free again
                self.hooks.withdraw(unit)  # and what admit counted in flight, unless the attempt was observed
            if delay is None:
                return
            if delay > 0:
                self.closing.wait(delay)

    def _attempt(self, unit: Unit, target: Target, probe: bool, slot: _Slot) -> float | None:
        """One attempt of ``unit`` on ``target`` holding ``slot``: None once the unit is resolved (or handed on),
        else the seconds to wait before the next attempt."""
        policy = self.config.retry
        limit = self._attempt_limit()
        if limit is None or self.stopped is not None:
            self._fail(unit, self.stopped or self._deadline_error())
            return None
        unit.attempts += 1
        sent = time.monotonic()
        outcome = target.transport.post(target.url, self._payload(unit, target), limit)
        elapsed = time.monotonic() - sent
        retry_after = parse_retry_after(outcome.headers, time.time())
        error = outcome.error
        if error is not None and quota_exhausted(error, retry_after, policy):
            # not a rate signal: this deployment is done for a while, so no sender waits for it
            slot.release(None, {}, None, elapsed)
        else:
            paused = None if retry_after is None else min(retry_after, policy.max_retry_after)
            slot.release(outcome.status, outcome.headers, paused, elapsed)
        if outcome.status is not None:
            target.answered = True
        if outcome.error is None or outcome.error.code != ErrorCode.CREDENTIAL_ERROR:
            target.credential_worked = True  # a token was produced (whatever the service then said)
        self.targets.record(target, outcome.error, probe)
        self.hooks.attempt(unit, outcome, elapsed)
        if error is None:
            try:
                rows, carried = unit.rows, unit.billed
                follow_ups = self.operation.accept(unit, outcome.body, outcome.request_id)
            except MalformedResponseError as exc:
                error = RowError(200, ErrorCode.MALFORMED_RESPONSE, self._clean(str(exc)))
                unit.unknown_shapes += 1
                # billed, and none of it placed on a row (nor kept by the operation for the rows it asks again)
                if unit.billed is carried and unit.results.unresolved(rows) == rows:
                    unit.billed = add_usage(unit.billed, billed_usage(outcome.body))
            else:
                if unit.billed is not None and follow_ups:  # rows asked again carry it to their end
                    follow_ups[0].billed = add_usage(follow_ups[0].billed, unit.billed)
                elif unit.billed is not None:
                    unit.results.add_billed(rows, unit.billed)
                unit.results.mark_source(rows, target.config.deployment)
                self.breaker.success()
                for part in follow_ups or ():
                    self.queue.put(part)
                if not follow_ups or unit.store_partial:
                    self.hooks.store(unit, outcome.body)
                return None
        if self._settled(unit, target, outcome, error, retry_after):
            return None
        if unit.attempts == unit.target_since:  # handed to another deployment: no reason to wait
            return 0.0
        delay = retry_delay(unit.attempts - unit.target_since, retry_after, policy, self.random)
        if self.deadline is not None and time.monotonic() + delay >= self.deadline:
            self._fail(unit, self._deadline_error(), outcome.request_id)
            return None
        return 0.0 if outcome.status == 429 else delay  # a 429 paused the deployment's senders through its controller

    def _settled(
        self, unit: Unit, target: Target, outcome: Outcome, error: RowError, retry_after: float | None
    ) -> bool:
        """Decide after a failed attempt: True when the unit is resolved (or handed on), False to retry it."""
        policy = self.config.retry
        if error.status == 401 and not unit.refreshed_credential:
            unit.refreshed_credential = True
            if target.config.credential.refresh_after_unauthorized():
                return False
        # a unit's attempts come one after another, with backoff between: a credential failing a few times in a
        # row for one unit, while none of the task's attempts got past it, is not a passing hiccup
        failures = 0 if target.credential_worked else unit.attempts - unit.target_since
        if is_systemic(error, outcome.connect_failed, target.answered, failures):
            return self._down(unit, target, error, outcome.request_id)
        if quota_exhausted(error, retry_after, policy):
            self.targets.rest(target, policy.max_retry_after)
            if self.targets.move_on(unit, time.monotonic()):
                return False
            stop_error = quota_error(error, retry_after, policy)
            self.stop(stop_error)
            self._fail(unit, stop_error, outcome.request_id)
            return True
        if unit.unknown_shapes > C.UNKNOWN_SHAPE_RESENDS and error.status == 200:
            # billed JSON of a shape no parser knows: sent again once (a glitch), not maxAttempts times
            self._fail(unit, error, outcome.request_id)
            return True
        if not should_retry(error.status, error.code):
            smaller = self.operation.split(unit, error)
            if smaller:
                for part in smaller:
                    self.queue.put(part)
                return True
            self._fail(unit, error, outcome.request_id)
            return True
        opened = self.breaker.failure(error, time.monotonic())
        if opened is not None:
            self.stop(opened)
            self._fail(unit, opened, outcome.request_id)
            return True
        if error.status == 429 and self.targets.move_on(unit, time.monotonic(), closed_only=True, calm_only=True):
            return False  # a rate-limited deployment's rows go on at once (FAILOVER_SPILL_SECONDS)
        if unit.attempts - unit.target_since >= policy.max_attempts:
            if self.targets.move_on(unit, time.monotonic()):
                return False
            self._fail(unit, error, outcome.request_id)
            return True
        self.targets.leave(unit, target, time.monotonic())  # its breaker open: on to the next one at once
        return False

    def _all_down(self, fault: RowError | None = None) -> RowError | None:
        everything = self.targets.all_down(fault) if self.targets.failover else None
        return None if everything is None else replace(everything, message=self._clean(everything.message))

    def _down(self, unit: Unit, target: Target, error: RowError, request_id: str | None) -> bool:
        """A systemic fault of ``target``: with failover, the unit moves on and the task stops only once every
        deployment is down (its error names each one's fault); else the task stops. True: the unit is resolved."""
        fault = error.with_attempts(unit.attempts, request_id)
        if self.targets.failover:
            first, everything = self.targets.take_down(target, fault)
            if everything is None:
                if first:
                    logger.warning("spark_aoai: %s is down, its requests go to the next deployment: %s %s",
                                   target.where(), error.code, self._clean(error.message))  # fmt: skip
                if self.targets.move_on(unit, time.monotonic()):
                    return False
                # the others rest for quota just now, or went down meanwhile
                self._fail(unit, self.stopped or self._all_down(fault) or error, request_id)
                return True
            error = fault = self._all_down(everything) or fault
        self.stop(fault, systemic=self.config.fail_on_systemic)
        self._fail(unit, error, request_id)
        return True
