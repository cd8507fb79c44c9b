"""How many small requests per second the emulator serves on this machine.

    .venv/bin/python benchmarks/emulator_throughput.py [--seconds 10] [--clients 4]

Starts the emulator as its own process and drives it from client processes with keep-alive connections
(http.client, the lightest client in the standard library), for chat and for one-input embeddings. The figure
includes the clients' own CPU cost on the same 2 cores, so the server alone is faster than it shows. If `wrk`
is installed (apt-get install wrk), it is also measured with wrk, which costs the server much less CPU.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spark_aoai.emulator import Emulator

BODIES = {
    "chat": (
        "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
        json.dumps({"messages": [{"role": "user", "content": "hi"}]}),
    ),
    "embeddings": (
        "/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21",
        json.dumps({"input": "hello world", "encoding_format": "base64"}),
    ),
}


def client(port: int, kind: str, seconds: float, out: multiprocessing.Queue) -> None:
    path, body = BODIES[kind]
    connection = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Content-Type": "application/json", "api-key": "x"}
    done, ok = 0, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        done += 1
        ok += response.status == 200
    out.put((done, ok))


def measure(port: int, kind: str, seconds: float, clients: int) -> tuple[float, int]:
    queue: multiprocessing.Queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=client, args=(port, kind, seconds, queue)) for _ in range(clients)]
    started = time.monotonic()
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.monotonic() - started
    total, ok = sum(r[0] for r in results), sum(r[1] for r in results)
    return total / elapsed, total - ok


def measure_wrk(port: int, kind: str, seconds: float) -> float | None:
    if not shutil.which("wrk"):
        return None
    path, body = BODIES[kind]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\nwrk.headers["Content-Type"] = "application/json"\n'
        )
    done = subprocess.run(
        ["wrk", "-t2", "-c8", f"-d{int(seconds)}s", "-s", script.name, f"http://127.0.0.1:{port}{path}"],
        capture_output=True,
        text=True,
    )
    for line in done.stdout.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    with Emulator(process=True) as emu:
        print(f"{'request':<12}{'client':<26}{'requests/s':>12}{'non-200':>10}")
        for kind in BODIES:
            rate, failed = measure(emu.port, kind, args.seconds, args.clients)
            print(f"{kind:<12}{f'http.client x{args.clients}':<26}{rate:>12.0f}{failed:>10}")
            wrk_rate = measure_wrk(emu.port, kind, args.seconds)
            if wrk_rate is not None:
                print(f"{kind:<12}{'wrk -t2 -c8':<26}{wrk_rate:>12.0f}{'':>10}")


if __name__ == "__main__":
    main()
