"""The rate controller against every limiter shape, in simulated time (no Spark, no HTTP, seconds to run).

    .venv/bin/python benchmarks/ratecontrol_sim.py [--shape ...] [--seeds 3]

Each partition's ``AdaptiveLimiter`` (the controller's pure logic, unchanged) sends its rows against the
emulator's own limiter classes (``Budget``, ``SlidingWindow``), answering with the headers the emulator sends
for the shape. Latency is drawn uniformly from latency x (1 +- jitter); a 429 answers at once. A 429's row is
asked again once the partition's pause is over (the sender's rule). Used to tune the controller before the
Spark benchmarks (``chat_throughput.py``), which measure the real thing.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import math
import random
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spark_aoai._engine.ratecontrol import AdaptiveLimiter
from spark_aoai.emulator._limiter import Budget, SlidingWindow


@dataclass
class Shape:
    name: str
    rps: float
    window: str = "continuous"
    window_seconds: float = 1.0
    limit_headers: bool = True
    whole_seconds: bool = False
    latency: float = 0.25
    jitter: float = 0.5
    rows: int = 1200
    partitions: int = 4
    concurrency: int = 128  # the library's default maximum per partition


REFUSAL_SECONDS = 0.005  # a 429 answers at once

SHAPES = {
    "continuous": Shape("continuous, 40 req/s", 40.0),
    "sliding1": Shape("sliding 1 s, 40 req/s", 40.0, "sliding", 1.0),
    "sliding10": Shape("sliding 10 s, no limit headers, whole-second Retry-After", 40.0, "sliding", 10.0, False, True),
    "slow": Shape("slow model 8 s +-50%, 40 req/s", 40.0, latency=8.0, concurrency=128),
}


def run(shape: Shape, seed: int, trace: bool = False, refusal: float = REFUSAL_SECONDS) -> dict[str, float]:
    rng = random.Random(seed)
    if shape.window == "sliding":
        budget: Budget | SlidingWindow = SlidingWindow(
            float(int(shape.rps * shape.window_seconds)), shape.window_seconds
        )
    else:
        budget = Budget(shape.rps, shape.rps * shape.window_seconds, 0.0)
    limiters = [AdaptiveLimiter(shape.concurrency, now=0.0) for _ in range(shape.partitions)]
    todo = [shape.rows // shape.partitions] * shape.partitions
    events: list[tuple[float, int, int, int, dict[str, str], float | None, float]] = []  # (t, seq, p, status, ...)
    wakes: list[tuple[float, int]] = [(0.0, p) for p in range(shape.partitions)]
    seq = ok = refused = 0
    admitted: list[float] = []
    now, traced = 0.0, 0.0
    throttled: list[float] = []
    while any(todo) or events:
        if trace and now >= traced + 1.0:
            traced = now
            paces = [f"{lim.pace or 0:.1f}" for lim in limiters]
            print(
                f"{now:5.1f}s adm {sum(1 for t in admitted if t > now - 1):3d} 429 "
                f"{sum(1 for t in throttled if t > now - 1):3d} pace {paces} "
                f"win {limiters[0].window:.0f} rem {budget.remaining(now):.0f}"
            )
        next_event = events[0][0] if events else math.inf
        next_wake = wakes[0][0] if wakes else math.inf
        if next_wake <= next_event:
            now, p = heapq.heappop(wakes)
        else:
            now, _, p, status, headers, retry, latency = heapq.heappop(events)
            limiters[p].finish(now, status, headers, retry, latency)
            if status == 200:
                ok += 1
            else:
                refused += 1
                todo[p] += 1
                throttled.append(now)
        limiter = limiters[p]
        while todo[p]:
            wait = limiter.delay(now, 1)
            if wait != 0.0:  # the controller waits for the time, or polls every 0.5 s for a free slot
                heapq.heappush(wakes, (now + (wait if wait > 0 else 0.5), p))
                break
            limiter.start(now, 1)
            todo[p] -= 1
            seq += 1
            waited = budget.wait(1.0, now)
            if waited == 0.0:
                budget.charge(1.0, now)
                admitted.append(now)
                latency = shape.latency * rng.uniform(1 - shape.jitter, 1 + shape.jitter)
                status, retry = 200, None
            else:
                latency, status = refusal, 429
                retry = float(max(1, math.ceil(waited))) if shape.whole_seconds else waited
            headers = {"x-ratelimit-remaining-requests": str(max(0, int(budget.remaining(now))))}
            if shape.limit_headers:
                headers["x-ratelimit-limit-requests"] = str(int(getattr(budget, "capacity", 0)))
            heapq.heappush(events, (now + latency, seq, p, status, headers, retry, latency))
    span = (admitted[-1] - admitted[0]) if len(admitted) > 1 else 1.0
    return {"of_limit": ok / span / shape.rps, "share_429": refused / (ok + refused), "end": now}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", nargs="*", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rows", type=int, help="rows instead of the shape's")
    parser.add_argument("--refusal-seconds", type=float, default=REFUSAL_SECONDS, help="a 429's round trip")
    parser.add_argument("--trace", action="store_true", help="a line per simulated second (first seed only)")
    args = parser.parse_args()
    for key in args.shape:
        shape = SHAPES[key]
        if args.rows:
            shape = dataclasses.replace(shape, rows=args.rows)
        results = [run(shape, seed, args.trace and seed == 0, args.refusal_seconds) for seed in range(args.seeds)]
        figures = ", ".join(f"{r['of_limit']:.2f} / {100 * r['share_429']:.1f}% / {r['end']:.0f} s" for r in results)
        print(f"{shape.name:60s} of limit (admissions) / 429 share / end: {figures}")


if __name__ == "__main__":
    main()
