"""Rate control logic without Spark or HTTP: time is passed in, nothing sleeps."""

from __future__ import annotations

import threading
import time

import pytest

from spark_aoai._core import constants as C
from spark_aoai._engine.ratecontrol import (
    AdaptiveLimiter,
    RateController,
    level_and_trend,
    next_pace,
    remaining_fraction,
    throttle_cut,
)


def ok(limiter: AdaptiveLimiter, now: float, remaining: int | None = None) -> None:
    headers = {} if remaining is None else {"x-ratelimit-remaining-requests": str(remaining)}
    limiter.finish(now, 200, headers, None)


def test_starts_with_the_full_window_and_blocks_beyond_it():
    limiter = AdaptiveLimiter(max_concurrency=3)
    for _ in range(3):
        assert limiter.delay(0.0, 10) == 0.0
        limiter.start(0.0, 10)
    assert limiter.delay(0.0, 10) < 0  # wait for a response
    ok(limiter, 0.1)
    assert limiter.delay(0.1, 10) == 0.0


def test_429_pauses_everyone_shrinks_the_window_and_starts_pacing():
    limiter = AdaptiveLimiter(max_concurrency=10)
    for _ in range(10):
        limiter.start(0.0, 1)
    for i in range(8):
        ok(limiter, 0.5 + i * 0.1)
    limiter.start(1.3, 1)
    limiter.finish(1.4, 429, {}, 0.5)
    assert limiter.paused_until == pytest.approx(1.9)
    assert limiter.window == pytest.approx(7.0, abs=0.5)
    assert limiter.pace is not None and limiter.pace > 0
    assert limiter.delay(1.5, 1) == pytest.approx(0.4)
    window = limiter.window
    limiter.finish(1.45, 429, {}, 0.5)  # the same burst: no second decrease
    assert limiter.window == window


def test_paced_requests_are_spaced():
    limiter = AdaptiveLimiter(max_concurrency=50)
    limiter.pace = 10.0
    limiter.start(0.0, 1)
    assert limiter.delay(0.0, 1) == pytest.approx(0.1)
    assert limiter.delay(0.1, 1) == 0.0


@pytest.mark.parametrize(
    ("fraction", "distrusted", "expected"),
    [
        (None, False, 10.1),  # no rate-limit headers: probe upwards slowly
        (1.0, False, 11.09),  # spare budget: grow in proportion to it (10% per unit above the band) + 0.3 step
        (0.5, False, 10.59),
        (1.0, True, 10.39),  # just after a 429, a high level counts only as RATE_DISTRUSTED_SPARE
        (0.06, False, 10.025),  # inside the band (2-6% left): barely move (1/20 of the step), no saw-tooth
        (0.04, False, 10.025),
        (0.02, False, 10.025),
        (0.01, False, 9.975),  # below it: shrink in proportion to the shortfall, gently
        (0.0, False, 9.95),
        (-0.02, False, 9.9),  # the trend says it runs out within the horizon: shrink faster
        (-0.5, False, 9.5),  # up to 5% per adjustment
    ],
)
def test_remaining_budget_steers_the_pace(fraction, distrusted, expected):
    assert next_pace(10.0, fraction, step=0.5, distrusted=distrusted) == pytest.approx(expected)


@pytest.mark.parametrize(("fast", "slow"), [(30.0, 5.0), (20.0, 0.2), (12.0, 11.0)])
def test_partitions_seeing_the_same_budget_converge_to_equal_shares(fast, slow):
    capacity, level = 40.0, 40.0  # one service bucket refilled at 40/s, shared by two paced partitions
    # slowly: inside the band the pace barely moves (no saw-tooth), so the shares meet over minutes, not seconds
    gaps = []
    for _ in range(3000):  # 300 s in 100 ms steps
        level = min(capacity, max(0.0, level + (40.0 - fast - slow) * 0.1))
        fraction = level / capacity
        fast, slow = next_pace(fast, fraction, step=0.2), next_pace(slow, fraction, step=0.2)
        gaps.append(abs(fast - slow) / (fast + slow))
    assert gaps[-1] < 0.2
    assert gaps[-1] <= gaps[600] + 0.01
    assert 36.0 < fast + slow < 46.0


def test_low_remaining_budget_switches_pacing_on_before_any_429():
    limiter = AdaptiveLimiter(max_concurrency=20)
    for i in range(20):
        limiter.start(i * 0.01, 1)
    ok(limiter, 0.3, remaining=100)
    assert limiter.pace is None
    ok(limiter, 0.31, remaining=5)
    assert limiter.pace is not None


def test_remaining_fraction_learns_capacity():
    capacity: dict[str, float] = {}
    assert remaining_fraction({"x-ratelimit-remaining-requests": "39"}, capacity) == pytest.approx(39 / 40)
    assert remaining_fraction({"x-ratelimit-remaining-requests": "3"}, capacity) == pytest.approx(3 / 40)
    remaining_fraction({"x-ratelimit-remaining-tokens": "999"}, capacity)
    both = {"x-ratelimit-remaining-requests": "39", "x-ratelimit-remaining-tokens": "0"}
    assert remaining_fraction(both, capacity) == 0.0
    assert remaining_fraction({}, capacity) is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-ratelimit-remaining-tokens": "2500", "x-ratelimit-limit-tokens": "10000"}, 0.25),
        # the limit header wins over what has been seen, so one outlier cannot skew the budget's size for good
        ({"x-ratelimit-remaining-tokens": "2500", "x-ratelimit-limit-tokens": "5000"}, 0.5),
        ({"x-ratelimit-remaining-tokens": "-1", "x-ratelimit-limit-tokens": "-1"}, None),  # "not reported"
        ({"x-ratelimit-remaining-tokens": "abc"}, None),
        ({"x-ratelimit-remaining-tokens": "2500", "x-ratelimit-limit-tokens": "0"}, 2500 / 20001),
        ({"x-ratelimit-remaining-requests": "2"}, None),  # a budget of under 4 says too little to steer by
    ],
)
def test_remaining_fraction_reads_limit_headers_and_ignores_placeholders(headers, expected):
    capacity = {"tokens": 20001.0}
    result = remaining_fraction(headers, capacity)
    assert result == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize(
    ("samples", "level", "slope"),
    [
        ([], None, None),
        ([(0.0, 0.5)], 0.5, 0.0),
        ([(0.0, 0.8), (0.1, 0.7), (0.2, 0.6), (0.3, 0.5)], 0.5, -1.0),  # draining one capacity per second
        ([(0.0, 0.2), (0.25, 0.3), (0.5, 0.4), (0.75, 0.5), (1.0, 0.6)], 0.6, 0.4),
        ([(0.0, 0.5), (0.05, 0.1), (0.1, 0.9), (0.15, 0.5)], 0.5, 0.0),  # too short a span for a trend: the mean
    ],
)
def test_level_and_trend_of_the_remaining_budget(samples, level, slope):
    fit = level_and_trend(samples)
    if level is None:
        assert fit is None
    else:
        assert fit == (pytest.approx(level), pytest.approx(slope))


@pytest.mark.parametrize(("drain_per_response", "slows_down"), [(6, True), (0, False)])
def test_a_draining_budget_slows_down_before_it_runs_out(drain_per_response, slows_down):
    limiter = AdaptiveLimiter(max_concurrency=32)
    limiter.pace, limiter.step = 20.0, 0.4
    limiter.last_adjust = 0.0
    for i in range(10):  # no 429: only the trend tells a budget about to run out from a steady low one
        remaining = 10 + drain_per_response * (9 - i)  # ends at 10%: from 64% falling fast, or flat
        headers = {"x-ratelimit-remaining-requests": str(remaining), "x-ratelimit-limit-requests": "100"}
        limiter.finish(0.1 * (i + 1), 200, headers, None, latency=0.05)
        if i == 5:
            midway = limiter.pace
    assert (limiter.pace < midway) is slows_down  # still 10% left at the end: it slows before running out


def test_after_a_429_headers_claiming_plenty_only_allow_limited_growth():
    limiter = AdaptiveLimiter(max_concurrency=32)
    limiter.pace, limiter.step = 10.0, 0.2
    limiter.finish(1.0, 429, {}, 0.05)  # refused although, say, another budget than the one reported ran out
    plenty = {"x-ratelimit-remaining-requests": "95", "x-ratelimit-limit-requests": "100"}
    limiter.finish(1.15, 200, plenty, None)
    cut = 10.0 * throttle_cut(0.05)
    assert limiter.pace == pytest.approx(next_pace(cut, 0.95, 0.2, distrusted=True))
    assert limiter.pace < next_pace(cut, 0.95, 0.2)
    limiter.finish(4.0, 200, plenty, None)  # long after the 429: the headers are believed again
    assert limiter.pace > next_pace(cut, 0.95, 0.2, distrusted=True) * 1.05


def test_remaining_samples_are_bounded_by_the_trend_window_even_when_never_paced():
    limiter = AdaptiveLimiter(max_concurrency=32)
    headers = {"x-ratelimit-remaining-requests": "900", "x-ratelimit-limit-requests": "1000"}
    for i in range(10_000):  # 100 s of responses at 100/s with plenty of budget left: never paced
        limiter.start(i * 0.01, 1)
        limiter.finish(i * 0.01 + 0.2, 200, headers, None, latency=0.2)
    assert limiter.pace is None
    assert len(limiter.samples) <= 101


def test_a_throttled_partition_cuts_its_own_pace_not_its_measured_rate():
    limiter = AdaptiveLimiter(max_concurrency=32)
    limiter.pace, limiter.step = 10.0, 0.2
    limiter.finish(5.0, 429, {}, 1.0)  # no successes measured lately: the cut is still 15% of the pace
    assert limiter.pace == pytest.approx(8.5)


def test_explicit_budget_spaces_requests():
    limiter = AdaptiveLimiter(max_concurrency=100, requests_per_second=2.0)
    for _ in range(2):  # one second of burst
        assert limiter.delay(0.0, 1) == 0.0
        limiter.start(0.0, 1)
    assert limiter.delay(0.0, 1) == pytest.approx(0.5)


def test_token_budget_waits_for_tokens():
    limiter = AdaptiveLimiter(max_concurrency=100, tokens_per_second=100.0)
    limiter.start(0.0, 80)
    assert limiter.delay(0.0, 50) == pytest.approx(0.3)


def test_paced_window_grows_back_additively():
    limiter = AdaptiveLimiter(max_concurrency=8)
    limiter.window, limiter.pace = 2.0, 1.0
    for i in range(2):
        limiter.start(0.0, 1)
        ok(limiter, 0.1 + i)
    assert 2.5 < limiter.window < 3.5


def test_controller_acquire_honours_a_deadline():
    controller = RateController(max_concurrency=1)
    assert controller.acquire(1)
    started = time.monotonic()
    assert controller.acquire(1, deadline=time.monotonic() + 0.2) is False
    assert time.monotonic() - started < 2.0


def test_controller_wakes_waiters_on_release():
    controller = RateController(max_concurrency=1)
    assert controller.acquire(1)
    got = []
    waiter = threading.Thread(target=lambda: got.append(controller.acquire(1, deadline=time.monotonic() + 5)))
    waiter.start()
    time.sleep(0.05)
    controller.release(200, {}, None)
    waiter.join(5)
    assert got == [True]


def test_a_429_never_shrinks_the_window_below_what_the_pace_needs():
    limiter = AdaptiveLimiter(max_concurrency=32)
    for i in range(20):
        limiter.start(i * 0.05, 1)
        limiter.finish(i * 0.05 + 0.5, 200, {}, None, latency=0.5)
    for k in range(10):  # a long run of separate 429 bursts
        limiter.finish(2.0 + k, 429, {}, 0.05)
    assert limiter.pace is not None
    assert limiter.window >= min(32.0, 2 * limiter.pace * 0.5) - 1e-9
    assert limiter.window >= 1.0


@pytest.mark.parametrize(
    ("fraction", "grows", "shrinks"),
    [
        (0.4, True, False),  # a sliding window reporting 40% left, no 429: the pace goes up
        (0.1, True, False),  # 10% left is still 10% of the limit unused: up
        (0.04, True, False),  # at the edge (96% of a sliding window's limit): 1/20 of the step, no more
        (0.0, False, True),  # empty: slow down
        (-0.2, False, True),  # the budget runs out within the horizon: slow down
        (None, True, False),  # no headers at all: probe upwards
    ],
)
def test_a_steady_level_leads_the_pace_up_until_the_edge(fraction, grows, shrinks):
    paced = next_pace(10.0, fraction, step=0.5)
    assert (paced > 10.0, paced < 10.0) == (grows, shrinks)


def test_a_sliding_window_is_filled_to_its_edge_and_held_there():
    limit, pace = 40.0, 20.0  # one partition alone (the others finished): a sliding 1 s window at half use
    paces = []
    for _ in range(50):  # 5 s in 100 ms steps; the window's level is one minus the share of the limit used
        pace = next_pace(pace, 1.0 - pace / limit, step=0.5)
        paces.append(pace)
    assert paces[30] >= 0.94 * limit  # the spare taken within 3 s
    assert max(paces) <= 0.98 * limit  # never past the band: no 429 needed to stop it
    assert all(0.94 * limit <= pace <= 0.98 * limit for pace in paces[30:])  # and held in it


def test_a_429_leads_the_pace_down():
    limiter = AdaptiveLimiter(max_concurrency=32)
    limiter.pace, limiter.step = 10.0, 0.2
    limiter.finish(1.0, 429, {}, 0.5)
    assert limiter.pace == pytest.approx(10.0 * throttle_cut(0.5))
    assert limiter.pace < 10.0
    assert limiter.delay(1.2, 1) == pytest.approx(0.3)  # Retry-After honoured by every sender


def test_without_429s_a_steady_40_percent_left_is_used_up():
    limiter = AdaptiveLimiter(max_concurrency=32)
    limiter.pace, limiter.step = 10.0, 0.2
    headers = {"x-ratelimit-remaining-requests": "160", "x-ratelimit-limit-requests": "400"}  # 40% left, steady
    for i in range(100):  # 10 s of answers, no 429
        limiter.finish(0.1 * (i + 1), 200, headers, None, latency=0.25)
    assert limiter.pace > 10.0 + 50 * 0.2


def test_slow_start_opens_by_the_clock_when_no_answer_comes_back():
    limiter = AdaptiveLimiter(max_concurrency=128)
    assert limiter.window == 8
    limiter.delay(2.0, 1)  # an 8 s model: nothing answered after 2 s
    assert limiter.window == 128


def test_a_controller_that_never_got_an_answer_for_hours_still_computes_its_window():
    limiter = AdaptiveLimiter(max_concurrency=16, now=0.0)  # 2.0 ** (3,600 / 0.5) overflowed a float before
    assert limiter.delay(3600.0, 1) == 0.0
    assert limiter.window == 16


@pytest.mark.parametrize(
    ("retry_after", "cut"),
    [(0.0, 0.92), (0.02, 0.91), (0.1, 0.87), (1.0, 0.85), (30.0, 0.85)],  # barely over: a mild cut; else 15%
)
def test_the_cut_deepens_with_the_retry_after(retry_after, cut):
    assert throttle_cut(retry_after) == pytest.approx(cut)


def test_slow_start_ends_when_the_budget_runs_low_at_the_rate_the_partition_was_sending():
    limiter = AdaptiveLimiter(max_concurrency=32)
    for i in range(12):
        limiter.start(0.05 * i, 1)
    plenty = {"x-ratelimit-remaining-requests": "300", "x-ratelimit-limit-requests": "400"}
    limiter.finish(0.6, 200, plenty, None, latency=0.25)
    assert limiter.pace is None  # 75% left: still opening
    low = {"x-ratelimit-remaining-requests": "280", "x-ratelimit-limit-requests": "400"}
    limiter.finish(0.65, 200, low, None, latency=0.25)
    assert limiter.pace == pytest.approx(9.0)  # the 9 started in the second before that reading's admission (0.4 s)


def test_a_slow_models_stale_readings_do_not_steer_and_it_probes_upwards():
    limiter = AdaptiveLimiter(max_concurrency=128)
    limiter.pace, limiter.step, limiter.latency = 10.0, 0.2, 8.0
    low = {"x-ratelimit-remaining-requests": "1", "x-ratelimit-limit-requests": "40"}
    for i in range(20):  # answers 8 s after their admission, reading an empty budget back then
        limiter.finish(10.0 + 0.1 * i, 200, low, None, latency=8.0)
    assert limiter.pace > 10.0


def test_a_big_request_is_set_aside_before_the_band_is_read():
    limiter = AdaptiveLimiter(max_concurrency=8, now=0.0)
    limiter.start(0.0, 330)
    assert limiter.request_share() == 0.0  # the token budget's size is not known yet
    limiter.capacity["tokens"] = 5000.0  # a one-second burst of 300k TPM
    assert limiter.request_share() == pytest.approx(330 / 5000)
    inside_the_band = (C.RATE_BAND_LOW + C.RATE_BAND_HIGH) / 2
    assert next_pace(10.0, inside_the_band, 0.5) > 10.0  # small requests: hold and creep up
    assert next_pace(10.0, inside_the_band - limiter.request_share(), 0.5) < 10.0  # 330 tokens do not fit: shrink
    limiter.start(0.0, 5000)  # a pack as big as the budget: a pack is paced by TokenCredit, the reserve is capped
    assert limiter.request_share() == C.RATE_REQUEST_RESERVE_MAX


def test_with_nothing_in_flight_a_learned_refill_never_holds_a_request_for_long():
    limiter = AdaptiveLimiter(max_concurrency=8, now=0.0)
    limiter.start(0.0, 2000)  # refused by a hair: 1,999 tokens left, retry after 60 s -> a refill of 0.02 token/s
    limiter.finish(0.1, 429, {"x-ratelimit-remaining-tokens": "1999"}, 60.0)
    assert limiter.credit.refill == pytest.approx(1 / 60)
    wait = limiter.credit.wait(61.0, 2000, in_flight=0)  # was 119,999 s: no answer could ever correct it
    assert 0 < wait <= C.TOKEN_CREDIT_IDLE_WAIT_SECONDS
