"""The per-deployment circuit breaker's state machine (``_breaker``), as tables of outcomes: pure, no HTTP."""

from __future__ import annotations

import pytest

from spark_aoai._core import constants as C
from spark_aoai._engine.breaker import CLOSED, HALF_OPEN, OPEN, Breaker


def fed(outcomes: list[bool], start: float = 0.0, step: float = 0.1) -> Breaker:
    breaker = Breaker()
    for i, failed in enumerate(outcomes):
        breaker.record(failed, start + i * step, probe=False)
    return breaker


@pytest.mark.parametrize(
    ("outcomes", "state"),
    [
        ([True] * (C.BREAKER_MIN_OUTCOMES - 1), CLOSED),  # too few outcomes to judge
        ([True] * C.BREAKER_MIN_OUTCOMES, OPEN),
        ([True, False] * 5, CLOSED),  # half failed is not "mostly"
        ([True, True, False] * 4, OPEN),  # 8 of 12
        ([False] * 30, CLOSED),
        ([True] * 5 + [False] * 10 + [True] * 6, CLOSED),  # 11 of 21, but the first left the window of 20
        ([False] * 20 + [True] * 11, OPEN),  # 11 of the last 20
    ],
)  # fmt: skip
def test_it_opens_when_most_of_the_recent_outcomes_failed(outcomes, state):
    assert fed(outcomes).state == state


def test_old_failures_leave_the_window_with_time():
    breaker = fed([True] * 9, step=1.0)  # 0 .. 8 s
    breaker.record(True, 8.01 + C.BREAKER_WINDOW_SECONDS, probe=False)  # the first nine are too old now
    assert breaker.state == CLOSED and len(breaker.outcomes) == 1


def test_an_open_breaker_lets_nothing_go_then_one_probe():
    breaker = fed([True] * 10)  # opened at 0.9 s
    opened = 0.9
    assert breaker.allow(opened) is None
    assert breaker.allow(opened + C.BREAKER_OPEN_SECONDS - 0.01) is None
    assert breaker.allow(opened + C.BREAKER_OPEN_SECONDS) == "probe"
    assert breaker.state == HALF_OPEN
    assert breaker.allow(opened + C.BREAKER_OPEN_SECONDS + 0.1) is None  # one probe at a time


def test_a_successful_probe_closes_it_with_an_empty_window():
    breaker = fed([True] * 10)
    assert breaker.allow(10.0) == "probe"
    breaker.record(False, 10.2, probe=True)
    assert breaker.state == CLOSED and not breaker.outcomes
    assert breaker.allow(10.3) == "request"
    for i in range(C.BREAKER_MIN_OUTCOMES - 1):  # judged afresh: nine failures are not enough again
        breaker.record(True, 10.4 + i * 0.01, probe=False)
    assert breaker.state == CLOSED


def test_a_failed_probe_opens_it_for_another_period():
    breaker = fed([True] * 10)
    assert breaker.allow(10.0) == "probe"
    breaker.record(True, 10.5, probe=True)
    assert breaker.state == OPEN and breaker.opened == 2
    assert breaker.allow(10.5 + C.BREAKER_OPEN_SECONDS - 0.01) is None
    assert breaker.allow(10.5 + C.BREAKER_OPEN_SECONDS) == "probe"


def test_outcomes_of_requests_sent_before_it_opened_do_not_count():
    breaker = fed([True] * 10)
    for i in range(20):  # in flight when it opened: neither closes nor reopens it
        breaker.record(i % 2 == 0, 1.0 + i * 0.01, probe=False)
    assert breaker.state == OPEN and breaker.opened == 1 and not breaker.outcomes


def test_a_lost_probe_lets_another_go_after_a_period():
    breaker = fed([True] * 10)
    assert breaker.allow(10.0) == "probe"  # never reports back (handed elsewhere before it was sent)
    assert breaker.allow(10.0 + C.BREAKER_OPEN_SECONDS - 0.01) is None
    assert breaker.allow(10.0 + C.BREAKER_OPEN_SECONDS) == "probe"


def test_a_late_probe_outcome_after_it_closed_counts_as_an_ordinary_one():
    breaker = fed([True] * 10)
    assert breaker.allow(10.0) == "probe"
    assert breaker.allow(15.0) == "probe"  # the first one is late
    breaker.record(False, 15.1, probe=True)  # the second closes it
    breaker.record(True, 15.2, probe=True)  # the first comes back, failed: one outcome of the window
    assert breaker.state == CLOSED and list(breaker.outcomes) == [(15.2, True)]
