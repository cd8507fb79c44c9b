"""What a request in flight costs the client: memory and CPU of the sender's thread-per-request design.

    .venv/bin/python benchmarks/inflight_cost.py [--in-flight 32 128 512] [--latency 4]

Runs one partition's engine (``run_partition``: the sender's thread per request over one pooled session, the
rate controller, the retry loop) over N rows with ``concurrency=N`` against the emulator in its own process with
a fixed latency and no limit, so that all N are in flight together (the controller's slow start opens them within
a couple of seconds); reports the growth of this process's RSS and its CPU seconds per request. No Spark: this is
the per-partition cost that the Little's-law window multiplies.
"""

from __future__ import annotations

import argparse
import threading
import time

import psutil
from _harness import print_table

from spark_aoai._client.auth import ApiKey, Secret
from spark_aoai._client.config import ClientConfig, Limits, resolve_endpoint
from spark_aoai._engine.partition import run_partition
from spark_aoai._planning.operations import ChatOperation
from spark_aoai.emulator import Emulator, Faults


def measure(endpoint: str, in_flight: int) -> list[str]:
    config = ClientConfig(
        endpoint=resolve_endpoint(endpoint),
        deployment="gpt-4o",
        credential=ApiKey(Secret("bench")),
        limits=Limits(concurrency=in_flight),
    )
    process = psutil.Process()
    before_rss, before_cpu = process.memory_info().rss, process.cpu_times()
    peak = [before_rss]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak.append(process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    batch = [f"question {i}" for i in range(in_flight)]
    out = list(run_partition(iter([(batch, 0)]), ChatOperation(model=None), config))
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    after_cpu = process.cpu_times()
    answered = sum(1 for value in out[0][0].values if value is not None) if out else 0
    cpu = (after_cpu.user - before_cpu.user) + (after_cpu.system - before_cpu.system)
    growth = (max(peak) - before_rss) / 2**20
    return [
        str(in_flight),
        f"{answered}",
        f"{seconds:.1f}",
        f"{growth:.1f}",
        f"{1024 * growth / in_flight:.0f}",
        f"{1000 * cpu / in_flight:.1f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--in-flight", type=int, nargs="*", default=[32, 128, 512])
    parser.add_argument("--latency", type=float, default=4.0, help="seconds each answer takes")
    args = parser.parse_args()
    with Emulator(process=True, faults=Faults(latency_ms=args.latency * 1000)) as emu:
        rows = [measure(emu.endpoint, n) for n in args.in_flight]
    print_table(
        f"\nrequests in flight at once, {args.latency:.0f} s latency, one process",
        ["in flight", "answered", "seconds", "RSS growth MiB", "KiB per request", "CPU ms per request"],
        rows,
    )


if __name__ == "__main__":
    main()
