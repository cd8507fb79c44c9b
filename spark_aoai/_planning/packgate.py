"""Whether packing works for a task, learned cheaply (issue #25): the first pack of a task goes alone, cut to a
few items (the probe), and the task's other packs wait for its answer. An answer with at least one usable item
proves the format; one with none (a server that ignores the packing format) costs a probe, and after
``C.PACK_PROBE_FAILURES`` such probes the task stops packing: its packs, waiting or planned later, go as single rows.

The engine asks ``gate`` before a unit's first attempt; waits are bounded by the task's deadline and end when
the task stops sending.
"""

from __future__ import annotations

import threading
import time

from spark_aoai._core import constants as C
from spark_aoai._core.contract import Unit

_POLL_SECONDS = 0.05


class PackState:
    """One task's verdict on packing: unproven (a probe in flight), proven, or off."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.proven = False
        self.off = False
        self.failures = 0
        self.probe: Unit | None = None
        self.probe_planned = False
        self.planned: Unit | None = None  # the probe plan() cut, until it reaches the gate or is answered

    def first_probe(self) -> bool:
        """True once per unproven task: its first pack is to be planned as the probe."""
        with self.condition:
            first = not (self.probe_planned or self.proven or self.off)
            self.probe_planned = True
            return first

    def verdict(self, unit: Unit, usable: bool) -> None:
        """A pack's 200 was read: ``usable`` when at least one item could be given to its row."""
        with self.condition:
            if usable:
                self.proven = True
            elif not self.proven:
                self.failures += 1
                self.off = self.failures >= C.PACK_PROBE_FAILURES
            if self.probe is unit:
                self.probe = None
            if self.planned is unit:  # answered from the response cache, without passing the gate
                self.planned = None
            self.condition.notify_all()

    def forget(self, unit: Unit) -> None:
        """The probe went another way (split after a refusal): the next pack probes instead."""
        with self.condition:
            if self.probe is unit:
                self.probe = None
                self.condition.notify_all()

    def wait_turn(self, unit: Unit, until: float | None, stop: threading.Event) -> str:
        """``"send"`` (proven, or ``unit`` is the probe, or the wait must end), ``"probe"`` (``unit`` is to be
        cut down and sent as the probe) or ``"single"`` (packing is off: send its rows one by one)."""
        with self.condition:
            while True:
                if self.off:
                    return "single"
                if self.proven or self.probe is unit:
                    return "send"
                probe, planned = self.probe, self.planned
                if planned is unit:
                    self.planned = None
                elif planned is not None and planned.results.unresolved(planned.rows):
                    probe = planned  # the probe plan() cut is on its way: it goes first, the same each run
                if probe is None or not probe.results.unresolved(probe.rows):  # none, or it ended without a verdict
                    self.probe = unit
                    return "probe"
                if stop.is_set() or (until is not None and time.monotonic() >= until):
                    return "send"  # the engine fails it with the task's reason
                self.condition.wait(_POLL_SECONDS)
