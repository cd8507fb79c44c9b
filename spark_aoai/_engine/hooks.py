"""The engine's seams: what a plug-in (response cache, spend cap, statistics) may do around each request.

``Hooks`` is one task's worth of them; a ``HookFactory`` is built on the driver, shipped with the plan and
opened once per task on the executor. Plug-ins are assembled in ``_plugins``, in one order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from spark_aoai._client.http import Outcome
from spark_aoai._core.contract import RowError, RowResults, Unit


class Hooks(Protocol):
    """The engine's seams, one task's worth: a response cache (between planning and sending), a gate before
    each attempt (a spend cap), and an observer of attempts (usage statistics, progress)."""

    def planned(self, results: RowResults) -> None:
        """A batch's rows were planned into ``results`` (every batch, even one with nothing to send)."""

    def lookup(self, unit: Unit) -> Any | None:
        """A stored 200 body for this unit's request, or None to send it."""

    def store(self, unit: Unit, body: Any) -> None:
        """Keep a 200 body that was accepted for this unit."""

    def admit(self, unit: Unit, until: float | None, stop: threading.Event) -> RowError | None:
        """None to let the next attempt of ``unit`` start; an error ends the unit with it, unsent. A hook that
        waits before it answers waits no later than ``until`` (a ``time.monotonic()`` deadline, or None) and
        stops waiting once ``stop`` is set (the task stopped sending)."""

    def attempt(self, unit: Unit, outcome: Outcome, seconds: float) -> None:
        """Called after every attempt that was sent, whatever its outcome."""

    def withdraw(self, unit: Unit) -> None:
        """An attempt ``admit`` let start was not sent after all (the task stopped, or it raised first)."""

    def close(self) -> None:
        """The task's partition is done (or failed): flush what is kept."""


class HookFactory(Protocol):
    """Built on the driver and shipped with the plan; ``open`` makes one task's hooks on the executor."""

    def open(self) -> Hooks: ...


class NoHooks:
    def planned(self, results: RowResults) -> None:
        pass

    def lookup(self, unit: Unit) -> Any | None:
        return None

    def store(self, unit: Unit, body: Any) -> None:
        pass

    def admit(self, unit: Unit, until: float | None, stop: threading.Event) -> RowError | None:
        return None

    def attempt(self, unit: Unit, outcome: Outcome, seconds: float) -> None:
        pass

    def withdraw(self, unit: Unit) -> None:
        pass

    def close(self) -> None:
        pass


class ComposedHooks:
    """Several hooks as one: the first stored answer wins, the first refusal wins, everyone observes. A hook
    with a ``meet`` method is handed all of them (the statistics read what the cache could not store)."""

    def __init__(self, hooks: list[Hooks]) -> None:
        self.hooks: list[Hooks] = [
            h for hook in hooks for h in (hook.hooks if isinstance(hook, ComposedHooks) else [hook])
        ]
        for hook in self.hooks:
            meet = getattr(hook, "meet", None)
            if meet is not None:
                meet(self.hooks)

    def planned(self, results: RowResults) -> None:
        for hook in self.hooks:
            hook.planned(results)

    def lookup(self, unit: Unit) -> Any | None:
        found = [h.lookup(unit) for h in self.hooks]  # every hook sees the unit (statistics count its rows)
        return next((body for body in found if body is not None), None)

    def store(self, unit: Unit, body: Any) -> None:
        for hook in self.hooks:
            hook.store(unit, body)

    def admit(self, unit: Unit, until: float | None, stop: threading.Event) -> RowError | None:
        return next((e for e in (h.admit(unit, until, stop) for h in self.hooks) if e is not None), None)

    def attempt(self, unit: Unit, outcome: Outcome, seconds: float) -> None:
        _every(self.hooks, lambda hook: hook.attempt(unit, outcome, seconds))

    def withdraw(self, unit: Unit) -> None:
        for hook in self.hooks:
            hook.withdraw(unit)

    def close(self) -> None:
        _every(self.hooks, lambda hook: hook.close())


def _every(hooks: list[Hooks], call: Callable[[Hooks], None]) -> None:
    """``call`` on every hook even when one raises (the spend cap's bill must not depend on the statistics'),
    then the first exception is raised."""
    first: Exception | None = None
    for hook in hooks:
        try:
            call(hook)
        except Exception as exc:
            first = first or exc
    if first is not None:
        raise first


def open_hooks(factories: tuple[HookFactory, ...]) -> Hooks:
    """One task's hooks from the plan's factories."""
    if not factories:
        return NoHooks()
    opened = [factory.open() for factory in factories]
    return opened[0] if len(opened) == 1 else ComposedHooks(opened)
