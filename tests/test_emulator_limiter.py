"""The emulator's limiter shapes checked against their definitions: pure windows first, then over real HTTP."""

from __future__ import annotations

import json

import pytest
import requests

from spark_aoai.emulator import Emulator, RateLimit
from spark_aoai.emulator.__main__ import parse_args
from spark_aoai.emulator._limiter import Budget, SlidingWindow

CHAT = {"messages": [{"role": "user", "content": "Does Azure OpenAI support customer managed keys? " * 5}]}


def chat(endpoint: str, body: object = CHAT) -> requests.Response:
    url = f"{endpoint}/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    return requests.post(url, data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=10)


@pytest.mark.parametrize(
    ("charges", "now", "remaining", "wait"),
    [
        ([], 0.0, 4.0, 0.0),
        ([0.0, 1.0, 2.0, 3.0], 3.5, 0.0, 6.5),  # full: the charge at 0.0 leaves at 10.0
        ([0.0, 1.0, 2.0, 3.0], 10.0, 1.0, 0.0),  # it has left (a charge is in the window for exactly span s)
        ([0.0, 1.0, 2.0, 3.0], 9.99, 0.0, 0.01),
        ([0.0, 0.0, 0.0, 9.0], 10.0, 3.0, 0.0),  # three leave together
        ([5.0, 5.0, 5.0, 5.0], 14.0, 0.0, 1.0),  # four at once leave at once
    ],
)
def test_sliding_window_counts_the_last_span_seconds(charges, now, remaining, wait):
    window = SlidingWindow(capacity=4.0, span=10.0)
    for at in charges:
        window.charge(1.0, at)
    assert window.remaining(now) == pytest.approx(remaining)
    assert window.wait(1.0, now) == pytest.approx(wait)


def test_sliding_window_never_admits_more_than_its_capacity_in_any_span():
    window, admitted = SlidingWindow(capacity=40.0, span=1.0), []
    for step in range(3000):  # offered at 100/s for 30 s: admitted only as old charges leave
        now = step / 100
        if window.wait(1.0, now) == 0.0:
            window.charge(1.0, now)
            admitted.append(now)
    for i, start in enumerate(admitted):
        assert sum(1 for t in admitted[i:] if t < start + 1.0) <= 40
    assert len(admitted) == pytest.approx(40 * 30, rel=0.02)


def test_sliding_window_waits_for_a_large_cost_and_clamps_one_beyond_capacity():
    window = SlidingWindow(capacity=100.0, span=60.0)
    window.charge(30.0, 0.0)
    window.charge(50.0, 20.0)
    assert window.wait(40.0, 30.0) == pytest.approx(30.0)  # 20 free; 40 needs the 30 of t=0 back at 60
    assert window.wait(90.0, 30.0) == pytest.approx(50.0)  # needs both back: the second at 80
    assert window.wait(500.0, 30.0) == pytest.approx(50.0)  # clamped to the capacity, not forever


def test_continuous_budget_refills_at_its_rate():
    budget = Budget(rate=40.0, capacity=40.0, now=0.0)
    for _ in range(40):
        budget.charge(1.0, 0.0)
    assert budget.remaining(0.0) == pytest.approx(0.0)
    assert budget.remaining(0.5) == pytest.approx(20.0)  # refilled continuously, not when a window ends
    assert budget.wait(1.0, 0.0) == pytest.approx(1 / 40)


def test_sliding_requests_window_over_http_rises_only_as_old_requests_leave():
    with Emulator(rate_limit=RateLimit(requests_per_minute=180, window_seconds=1.0, window="sliding")) as emu:
        answers = [chat(emu.endpoint) for _ in range(4)]  # 3 per 1 s window
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert [a.headers["x-ratelimit-remaining-requests"] for a in answers[:3]] == ["2", "1", "0"]
        assert answers[0].headers["x-ratelimit-limit-requests"] == "3"
        assert 0 < int(answers[3].headers["retry-after-ms"]) <= 1000


def test_simulator_shape_sends_no_limit_headers_and_whole_second_retry_after():
    shape = RateLimit(
        requests_per_minute=60,
        window_seconds=10.0,
        window="sliding",
        limit_headers=False,
        retry_after="seconds",
    )
    with Emulator(rate_limit=shape) as emu:
        answers = [chat(emu.endpoint) for _ in range(11)]  # 10 per 10 s window
        assert [a.status_code for a in answers].count(200) == 10
        refused = answers[-1]
        assert refused.status_code == 429
        assert not any(name.startswith("x-ratelimit-limit") for name in answers[0].headers)
        assert answers[0].headers["x-ratelimit-remaining-requests"] == "9"
        assert "retry-after-ms" not in refused.headers
        assert refused.headers["Retry-After"] in {"9", "10"}  # whole seconds, rounded up


@pytest.mark.parametrize(("chat_cost", "max_tokens", "cost"), [("max_tokens", None, 16), ("max_tokens", 40, 40)])
def test_chat_charged_by_max_tokens_alone(chat_cost, max_tokens, cost):
    body = CHAT if max_tokens is None else {**CHAT, "max_tokens": max_tokens}
    limit = RateLimit(tokens_per_minute=60_000, window="sliding", chat_cost=chat_cost)
    with Emulator(rate_limit=limit) as emu:
        answer = chat(emu.endpoint, body)
        assert int(answer.headers["x-ratelimit-remaining-tokens"]) == 60_000 - cost
    with Emulator(rate_limit=RateLimit(tokens_per_minute=60_000, window="sliding")) as emu:  # prompt + max_tokens
        answer = chat(emu.endpoint, body)
        assert int(answer.headers["x-ratelimit-remaining-tokens"]) < 60_000 - cost - 40


def test_shape_choices_are_checked_and_reach_the_cli():
    with pytest.raises(ValueError, match=r"RateLimit\.window"):
        RateLimit(window="fixed")
    with pytest.raises(ValueError, match=r"RateLimit\.retry_after"):
        RateLimit(retry_after="minutes")
    flags = ["--rate-shape", "sliding", "--rate-window", "10", "--no-limit-headers"]
    args = parse_args(["--rpm", "60", *flags, "--retry-after", "seconds", "--chat-cost", "max_tokens"])
    assert (args.rate_shape, args.rate_window, args.no_limit_headers) == ("sliding", 10.0, True)
    assert (args.retry_after, args.chat_cost) == ("seconds", "max_tokens")
