"""What outlives one request: the settings in force, the rate-limit buckets, the fault dice and the counters.

All of it sits behind one lock, so the handler threads of a ``ThreadingHTTPServer`` share it safely; tests read
the counters through ``GET /_emulator/stats`` (:meth:`State.snapshot`). The Batch API's calls, batches and lines
have counters of their own: a batch line is never an online request, and its tokens are billed apart.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import Counter, OrderedDict
from typing import Any

from spark_aoai.emulator._limiter import Budget, SlidingWindow
from spark_aoai.emulator._settings import TOKEN_WINDOW_SECONDS, RateLimit, Settings

# Azure always reports its budgets; with a budget switched off the emulator reports this much left, unchanging.
# Prompt caching: prompts from this many tokens on; this many prompts remembered.
CACHE_MIN_TOKENS = 1024
CACHE_PROMPTS = 4096
UNLIMITED_HEADERS = {"x-ratelimit-remaining-requests": "1000000", "x-ratelimit-remaining-tokens": "1000000000"}


class State:
    """Settings, rate-limit buckets and the counters tests read, behind one lock."""

    def __init__(self, settings: Settings) -> None:
        self.lock = threading.Lock()
        self.settings = settings
        self.random = random.Random(settings.faults.seed)
        self.buckets: dict[tuple[str, str], Budget | SlidingWindow] = {}
        self.prompts: OrderedDict[bytes, None] = OrderedDict()  # recent long prompts, for cached_tokens
        self.reset_stats()

    def reset_stats(self) -> None:
        self.requests: Counter[str] = Counter()
        self.inputs: Counter[str] = Counter()
        self.answered_inputs: Counter[str] = Counter()
        self.input_counts: list[int] = []
        self.paths: Counter[str] = Counter()
        self.auth: Counter[str] = Counter()
        self.headers: Counter[str] = Counter()
        self.admitted_tokens = 0
        self.billed_tokens = 0  # total_tokens of the 200 answers' usage
        self.answers_per_second: Counter[int] = Counter()
        self.throttled_per_second: Counter[int] = Counter()
        self.first_request_at: float | None = None
        self.last_answer_at: float | None = None
        self.last_admitted_at: float | None = None  # the last request the rate limiter let through
        self.files = 0  # input files uploaded
        self.batch_api: Counter[str] = Counter()  # "POST batches", "GET batches/{id}", ...
        self.batches: Counter[str] = Counter()  # "created", then each batch's final status
        self.batch_lines: Counter[str] = Counter()  # "chat 200", "chat 400", "chat batch_expired", ...
        self.batch_answered_inputs: Counter[str] = Counter()
        self.batch_billed_tokens = 0

    def configure(self, settings: Settings) -> None:
        with self.lock:
            self.settings = settings
            self.random = random.Random(settings.faults.seed)
            self.buckets = {}

    def roll(self, rate: float) -> bool:
        """True with probability ``rate`` (from the seeded generator, so a seed replays the same faults)."""
        if rate <= 0:
            return False
        with self.lock:
            return self.random.random() < rate

    def uniform(self, low: float, high: float) -> float:
        with self.lock:
            return self.random.uniform(low, high)

    def shuffled(self, count: int) -> list[int]:
        order = list(range(count))
        with self.lock:
            self.random.shuffle(order)
        return order

    def admit(self, deployment: str, tokens: int, charge: bool = True) -> tuple[float, dict[str, str]]:
        """Charge one request and ``tokens``; return (seconds to wait, 0 if admitted) and rate headers.

        With ``charge=False`` only the headers are wanted (a request refused before it reached the limiter).
        """
        limit = self.settings.rate_limit
        headers: dict[str, str] = {}
        now = time.monotonic()
        with self.lock:
            charges: list[tuple[Budget | SlidingWindow, float, str]] = []
            if limit.requests_per_minute:
                bucket = self._bucket(deployment, "requests", limit.requests_per_minute, limit)
                charges.append((bucket, 1.0, "requests"))
            if limit.tokens_per_minute:
                bucket = self._bucket(deployment, "tokens", limit.tokens_per_minute, limit)
                charges.append((bucket, float(tokens), "tokens"))
            wait = max((bucket.wait(cost, now) for bucket, cost, _ in charges), default=0.0)
            if wait == 0.0 and charge:
                self.admitted_tokens += tokens
                self.last_admitted_at = time.time()
                for bucket, cost, _ in charges:
                    bucket.charge(cost, now)
            for bucket, _, name in charges:
                headers[f"x-ratelimit-remaining-{name}"] = str(max(0, int(bucket.remaining(now))))
                if limit.limit_headers:
                    headers[f"x-ratelimit-limit-{name}"] = str(int(bucket.capacity))
        return wait, {**UNLIMITED_HEADERS, **headers}

    def _bucket(self, deployment: str, kind: str, per_minute: float, limit: RateLimit) -> Budget | SlidingWindow:
        key = (deployment, kind)
        if key not in self.buckets:
            rate = per_minute / 60.0
            if limit.window == "sliding":  # requests over window_seconds, tokens over a minute
                span = limit.window_seconds if kind == "requests" else TOKEN_WINDOW_SECONDS
                self.buckets[key] = SlidingWindow(max(1.0, float(int(rate * span))), span)
            else:
                self.buckets[key] = Budget(rate, max(1.0, rate * limit.window_seconds), time.monotonic())
        return self.buckets[key]

    def cached_tokens(self, prompt: str, tokens: int) -> tuple[int, int]:
        """Prompt caching as Azure reports it: (tokens read from the cache, tokens written to it).

        A prompt of 1,024+ tokens is cached from its start in steps of 128 tokens: written the first time,
        read every time after.
        """
        if tokens < CACHE_MIN_TOKENS:
            return 0, 0
        key = hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).digest()
        with self.lock:
            seen = key in self.prompts
            self.prompts[key] = None
            self.prompts.move_to_end(key)
            while len(self.prompts) > CACHE_PROMPTS:
                self.prompts.popitem(last=False)
        cacheable = CACHE_MIN_TOKENS + (tokens - CACHE_MIN_TOKENS) // 128 * 128
        return (cacheable, 0) if seen else (0, cacheable)

    def count_request(self, path: str, auth: str, header_names: list[str]) -> None:
        with self.lock:
            if self.first_request_at is None:
                self.first_request_at = time.time()
            self.paths[path] += 1
            self.auth[auth] += 1
            self.headers.update(header_names)

    def count(self, route: str, status: int, inputs: list[str], answered: bool) -> None:
        with self.lock:
            self.requests[f"{route} {status}"] += 1
            self.inputs.update(inputs)
            self.input_counts.append(len(inputs))
            self.last_answer_at = time.time()
            if answered:
                self.answers_per_second[int(self.last_answer_at)] += 1
                self.answered_inputs.update(inputs)
            elif status == 429:
                self.throttled_per_second[int(self.last_answer_at)] += 1

    def bill(self, answer: Any) -> None:
        total = _total_tokens(answer)
        with self.lock:
            self.billed_tokens += total

    def count_batch_api(self, call: str) -> None:
        with self.lock:
            self.batch_api[call] += 1

    def count_upload(self) -> None:
        with self.lock:
            self.files += 1

    def count_batch(self, status: str) -> None:
        with self.lock:
            self.batches[status] += 1

    def count_batch_line(self, route: str, outcome: str, inputs: list[str], answer: Any = None) -> None:
        """One batch line: ``outcome`` is its status code, or its error code when it got no response."""
        total = _total_tokens(answer)
        with self.lock:
            self.batch_lines[f"{route} {outcome}"] += 1
            if outcome == "200":
                self.batch_answered_inputs.update(inputs)
                self.batch_billed_tokens += total

    def snapshot(self, with_inputs: bool = True) -> dict[str, Any]:
        with self.lock:
            snap: dict[str, Any] = {
                "requests": dict(self.requests),
                "inputs_per_request": list(self.input_counts) if with_inputs else [],
                "paths": dict(self.paths),
                "admitted_tokens": self.admitted_tokens,
                "billed_tokens": self.billed_tokens,
                "first_request_at": self.first_request_at,
                "last_answer_at": self.last_answer_at,
                "last_admitted_at": self.last_admitted_at,
                "answers_per_second": {str(k): v for k, v in sorted(self.answers_per_second.items())},
                "throttled_per_second": {str(k): v for k, v in sorted(self.throttled_per_second.items())},
                "auth": dict(self.auth),
                "headers": dict(self.headers),
                "files": self.files,
                "batch_api": dict(self.batch_api),
                "batches": dict(self.batches),
                "batch_lines": dict(self.batch_lines),
                "batch_billed_tokens": self.batch_billed_tokens,
            }
            if with_inputs:
                snap["inputs"] = dict(self.inputs)
                snap["answered_inputs"] = dict(self.answered_inputs)
                snap["batch_answered_inputs"] = dict(self.batch_answered_inputs)
            return snap


def _total_tokens(answer: Any) -> int:
    """``usage.total_tokens`` of a 200 body (0 when it has none)."""
    usage = answer.get("usage") if isinstance(answer, dict) else None
    total = usage.get("total_tokens") if isinstance(usage, dict) else None
    return total if isinstance(total, int) else 0
