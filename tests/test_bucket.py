"""The client's token bucket (its pacing) and the emulator's own rate budget, each a pure function of its clock:
two formulations of one model, held to the same table, so a mistake in one does not hide in the other."""

from __future__ import annotations

import subprocess
import sys

import pytest

from spark_aoai._engine.bucket import TokenBucket
from spark_aoai.emulator._limiter import Budget

CASES = [
    # (time, cost, take?) per step; the waits wait_for reports before each take
    (10.0, 10.0, [(0.0, 4.0, True), (0.0, 4.0, True), (0.0, 4.0, False)], [0.0, 0.0, 0.2], 2.0),
    (10.0, 10.0, [(0.0, 10.0, True), (0.5, 10.0, False)], [0.0, 0.5], 5.0),
    (10.0, 10.0, [(0.0, 10.0, True), (5.0, 1.0, False)], [0.0, 0.0], 10.0),  # refill stops at capacity
    (2.0, 4.0, [(0.0, 100.0, True), (1.0, 100.0, False)], [0.0, 1.0], 2.0),  # cost clamped to capacity
    (1.0, 5.0, [(3.0, 5.0, True), (2.0, 1.0, False)], [0.0, 1.0], 0.0),  # a clock stepping back adds nothing
    (4.0, 4.0, [(0.0, 0.0, True)], [0.0], 4.0),
]
IDS = ["partial-drain", "refill-rate", "capped-refill", "clamped-cost", "clock-back", "free"]


@pytest.mark.parametrize(("rate", "capacity", "steps", "expected_waits", "expected_level"), CASES, ids=IDS)
def test_bucket(rate, capacity, steps, expected_waits, expected_level):
    bucket = TokenBucket.full(rate, capacity, now=0.0)
    waits = []
    for now, cost, take in steps:
        bucket.refill(now)
        waits.append(bucket.wait_for(cost))
        if take:
            bucket.take(cost)
    assert waits == pytest.approx(expected_waits)
    assert bucket.level == pytest.approx(expected_level)


MONOTONIC = [(case, name) for case, name in zip(CASES, IDS, strict=True) if name != "clock-back"]  # its clock


@pytest.mark.parametrize(
    ("rate", "capacity", "steps", "expected_waits", "expected_level"),
    [case for case, _ in MONOTONIC],
    ids=[name for _, name in MONOTONIC],
)
def test_the_emulators_budget_agrees(rate, capacity, steps, expected_waits, expected_level):
    budget = Budget(rate, capacity, now=0.0)
    waits = []
    for now, cost, take in steps:
        waits.append(budget.wait(cost, now))
        if take:
            budget.charge(cost, now)
    assert waits == pytest.approx(expected_waits)
    assert budget.remaining(steps[-1][0]) == pytest.approx(expected_level)


@pytest.mark.parametrize(("rate", "capacity"), [(0.0, 1.0), (1.0, 0.0), (-1.0, 1.0)])
def test_bucket_rejects_a_budget_that_never_refills(rate, capacity):
    with pytest.raises(ValueError, match="positive"):
        TokenBucket.full(rate, capacity, now=0.0)


def test_bucket_imports_without_pyspark_or_the_client():
    script = (
        "import sys; sys.modules['pyspark'] = None\n"
        "import spark_aoai._engine.bucket\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('spark_aoai'))\n"
        "allowed = ('spark_aoai', 'spark_aoai.exceptions', 'spark_aoai._core', 'spark_aoai._engine')\n"
        "assert 'spark_aoai._engine.bucket' in loaded, loaded\n"
        "assert all(m in allowed or m == 'spark_aoai._engine.bucket' or m.startswith('spark_aoai._core.')\n"
        "           for m in loaded), loaded  # the core layer only: nothing of the client or the engine's rest\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
