"""The response cache at scale: lookup cost per row and a re-run's time with ``--entries`` answers stored,
beside a run without the cache.

    .venv/bin/python benchmarks/cache.py [--entries 1000000] [--uncached-rows 20000] [--dir /tmp/...]

1. Fills ``cacheDir`` with ``--entries`` chat answers (the keys the job below computes), through the store.
2. Looks up 100k stored keys and 100k absent ones through one task's cache hooks (no Spark): microseconds
   per lookup, and how much the process grew (the cache keeps no index in memory).
3. Re-runs ChatCompletion over all ``--entries`` rows with that ``cacheDir`` (``local[2]``): every row from
   the cache, nothing sent; beside the same stage without the cache over ``--uncached-rows`` rows against
   the emulator (in its own process, no latency): the rows/s of each.
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from _harness import print_table, spark_session

from spark_aoai import ChatCompletion
from spark_aoai._core.contract import RowResults
from spark_aoai._features.cache import CacheFactory, entry_bytes, entry_name
from spark_aoai._planning.operations import ChatOperation
from spark_aoai.emulator import Emulator, chat_reply

DEPLOYMENT = "gpt-4o"
OPERATION = ChatOperation(model=None)


def prompt(i: int) -> str:
    return f"benchmark prompt number {i}: summarise this support ticket in one sentence"


def answer(text: str) -> dict:
    reply = chat_reply([{"role": "user", "content": text}])
    return {
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": DEPLOYMENT,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 12, "total_tokens": 32},
    }  # fmt: skip


def fill(directory: str, entries: int) -> float:
    hooks = CacheFactory(directory, OPERATION.route, DEPLOYMENT).open()
    started = time.perf_counter()

    def write(start: int) -> None:
        for i in range(start, min(entries, start + 10_000)):
            (unit,) = OPERATION.plan([prompt(i)], RowResults(1))
            key = hooks.key(unit)
            hooks.files.write(entry_name(key), entry_bytes(key, answer(prompt(i))))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(0, entries, 10_000)))
    return time.perf_counter() - started


def lookups(directory: str, entries: int, count: int) -> tuple[float, float, float]:
    hooks = CacheFactory(directory, OPERATION.route, DEPLOYMENT).open()
    rng = random.Random(1)
    present = [OPERATION.plan([prompt(rng.randrange(entries))], RowResults(1))[0] for _ in range(count)]
    absent = [OPERATION.plan([f"not stored {i}"], RowResults(1))[0] for i in range(count)]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    assert all(hooks.lookup(unit) is not None for unit in present)
    hit = (time.perf_counter() - started) / count
    started = time.perf_counter()
    assert all(hooks.lookup(unit) is None for unit in absent)
    miss = (time.perf_counter() - started) / count
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    return hit * 1e6, miss * 1e6, grown


def job(spark, rows: int, endpoint: str, cache_dir: str | None) -> float:
    from pyspark.sql import functions as F

    df = spark.range(0, rows, 1, 2).select(
        F.concat(F.lit("benchmark prompt number "), F.col("id"),
                 F.lit(": summarise this support ticket in one sentence")).alias("prompt")
    )  # fmt: skip
    settings = {"cacheDir": cache_dir} if cache_dir else {}
    stage = ChatCompletion(deploymentName=DEPLOYMENT, promptCol="prompt", endpoint=endpoint, **settings)
    started = time.perf_counter()
    failed = stage.transform(df).filter("error is not null").count()
    assert failed == 0, failed
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--uncached-rows", type=int, default=20_000)
    parser.add_argument("--lookups", type=int, default=100_000)
    parser.add_argument("--dir", default=None, help="cacheDir to fill (default: a temporary directory, removed)")
    args = parser.parse_args()
    directory = args.dir or tempfile.mkdtemp(prefix="spark_aoai-cache-bench-")
    try:
        filled = fill(directory, args.entries)
        print(f"filled {args.entries:,} entries in {filled:.0f} s", flush=True)
        hit, miss, grown = lookups(directory, args.entries, args.lookups)
        with Emulator(process=True) as emu:
            spark = spark_session(2, "spark_aoai cache benchmark", reuse_workers=True)
            job(spark, 2_000, emu.endpoint, None)  # warm up the session and its workers
            uncached = job(spark, args.uncached_rows, emu.endpoint, None)
            emu.reset_stats()
            cached = job(spark, args.entries, emu.endpoint, directory)
            resent = sum(emu.stats(inputs=False)["requests"].values())
            spark.stop()
        print_table(
            f"Response cache with {args.entries:,} entries (local disk, local[2]; lookups: one task, no Spark)",
            ["run", "rows", "seconds", "rows/s", "requests", "lookup us/row (hit / miss)", "RSS growth MB"],
            [
                ["without cache", f"{args.uncached_rows:,}", f"{uncached:.1f}", f"{args.uncached_rows / uncached:,.0f}",
                 f"{args.uncached_rows:,}", "-", "-"],
                ["re-run, all cached", f"{args.entries:,}", f"{cached:.1f}", f"{args.entries / cached:,.0f}",
                 str(resent), f"{hit:.1f} / {miss:.1f}", f"{grown:.1f}"],
            ],
        )  # fmt: skip
    finally:
        if args.dir is None:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
