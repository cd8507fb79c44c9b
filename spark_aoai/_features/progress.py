"""The progress line on the driver: a thread that reads the run's task records and redraws one line.

It reads only the statistics directory the tasks write (``_stats``): no SparkContext, no JVM, no Spark call
at all, so it behaves the same on classic Spark and Spark Connect, wherever the driver can see that
directory. The tasks flush their records every second; the line is redrawn every ``interval`` seconds:

    spark_aoai gpt-4o: 1,200/5,000 rows (24%), 3 errors, 96 req, 2 429s, 3,150 tokens/s, ETA 0:00:41

In a notebook kernel with the ``notebook`` extra (tqdm, ipywidgets) it is a live progress bar instead
(``_progress_widgets``: rows, rate, ETA, tokens, cost so far, errors by code); in another IPython session the
line is one display updated in place; on a console it is rewritten with ``\\r`` on a terminal, else printed
as a new line each time (a log). The thread ends when the action is over.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from spark_aoai._core import constants as C
from spark_aoai._core.pricing import Price
from spark_aoai._features.progress_widgets import NotebookBar, notebook_kernel, widgets_available
from spark_aoai._features.stats import read_records


def interactive() -> bool:
    """Whether the driver runs in an interactive session: a notebook kernel, a REPL, or a terminal."""
    if hasattr(sys, "ps1") or sys.flags.interactive:
        return True
    ipython = sys.modules.get("IPython")
    return ipython is not None and getattr(ipython, "get_ipython", lambda: None)() is not None


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def render(label: str, records: list[dict[str, Any]], total: int | None, now: float, noun: str = "rows") -> str:
    """One progress line from the task records (rows done of ``total`` when known, errors, rates, ETA).

    ``noun``: what the tasks count, ``texts`` when a row is several of them (``ai.similarity``'s two)."""
    done = sum(r["rows_done"] for r in records)
    errors = sum(r["error_rows"] for r in records)
    requests = sum(r["requests"] for r in records)
    throttled = sum(r["statuses"].get("429", 0) for r in records)
    tokens = sum(r["tokens"]["total_tokens"] for r in records)
    if records and all(r.get("closed") for r in records):
        now = max(r["updated"] for r in records)  # every task is over: the rates of the job, not of the wait
    elapsed = now - min((r["started"] for r in records), default=now)
    rows = f"{done:,}/{total:,} {noun} ({100 * done // max(total, 1)}%)" if total else f"{done:,} {noun}"
    rate = f"{tokens / elapsed:,.0f} tokens/s" if elapsed > 0 else "- tokens/s"
    eta = ""
    if total and 0 < done < total and elapsed > 0:
        eta = f", ETA {_clock((total - done) / (done / elapsed))}"
    return f"spark_aoai {label}: {rows}, {errors:,} errors, {requests:,} req, {throttled:,} 429s, {rate}{eta}"


class Progress:
    """Redraw the line every ``interval`` seconds until ``finished()`` is true, then draw it a last time."""

    def __init__(
        self,
        label: str,
        directory: str,
        run_id: str,
        finished: Callable[[], bool],
        total: int | None = None,
        interval: float = C.PROGRESS_DEFAULT_INTERVAL_SECONDS,
        stream: TextIO | None = None,
        noun: str = "rows",
        price: Price | None = None,
    ) -> None:
        self.label, self.directory, self.run_id, self.noun = label, directory, run_id, noun
        self.finished, self.total, self.interval = finished, total, interval
        self.stream = stream
        self.lines: list[str] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="spark_aoai-progress", daemon=True)
        self.handle: Any = None
        self.price = price
        self.bar: NotebookBar | None = None

    def start(self) -> Progress:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()

    def _loop(self) -> None:
        drawn = False
        while not self.stopped.wait(self.interval):
            over = self.finished()
            records = read_records(self.directory, self.run_id)
            if records:
                self.show(records, final=over)
                drawn = True
            if over:
                if drawn and self.stream is None and self.handle is None and self.bar is None and sys.stderr.isatty():
                    self._write("\n")
                return

    def show(self, records: list[dict[str, Any]], final: bool) -> None:
        """Draw the records: the notebook's bar when it can be drawn, else the text line."""
        line = render(self.label, records, self.total, time.time(), self.noun)
        if self.bar is None and self.stream is None and notebook_kernel() and widgets_available():
            self.bar = NotebookBar(self.label, self.total, self.noun, self.price)
        if self.bar is None:
            self._draw(line, final)
            return
        self.lines.append(line)
        self.bar.show(records, final)

    def _draw(self, line: str, final: bool) -> None:
        self.lines.append(line)
        if self.stream is not None:
            self._write(line + "\n")
            return
        if "IPython" in sys.modules and interactive():
            from IPython.display import display

            if self.handle is None:
                self.handle = display({"text/plain": line}, raw=True, display_id=True)
            else:
                self.handle.update({"text/plain": line}, raw=True)
            return
        terminal = sys.stderr.isatty()
        self._write(("\r" + line) if terminal else (line + "\n"))

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(text)
        stream.flush()
