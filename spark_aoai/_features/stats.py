"""Job statistics: what each task sent, and what the driver adds up after an action.

On the executors, ``StatsHooks`` (an engine observer, one per task) counts every attempt (by status, retries,
429s) and the tokens each 200 body says were billed, and tracks its batches' resolved and error rows. It
writes that as one small JSON record, ``<statisticsDir>/<run>/<task>.json``, every ``C.STATS_FLUSH_SECONDS`` and when
the task ends (replaced atomically, so a reader never sees half a record). Nothing is shared between tasks
and nothing goes through the JVM, so it works the same on classic Spark and Spark Connect; the driver reads
the records when the directory is visible to it (local mode, or a shared path on a cluster).

Rows and error codes come from the output itself (``DataFrame.observe`` in ``_usage``), which needs no
shared path; ``JobStatistics`` puts the two together and says which figures are missing.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spark_aoai._client.http import Outcome
from spark_aoai._core import constants as C
from spark_aoai._core.contract import RowResults, Unit
from spark_aoai._core.pricing import Price
from spark_aoai._engine.hooks import ComposedHooks, Hooks, NoHooks
from spark_aoai._features.budget import BudgetFactory
from spark_aoai._features.cache import CacheHooks
from spark_aoai._features.timeline import Timeline, merge
from spark_aoai._planning.calibrate import describe_cascade
from spark_aoai._wire.usage import billed_usage

TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens")
BILLED_FIELDS = ("prompt_tokens", "completion_tokens", "cached_tokens")  # what a price applies to


@dataclass(frozen=True)
class StatsFactory:
    """Shipped with the plan: where this run's task records go."""

    directory: str
    run_id: str
    # batch mode: every action over the output reads the same answers again, so one action's tasks count
    once: bool = False
    deployments: tuple[str, ...] = ()  # the plan's deployments, in failover order (the report's cost table)

    def open(self) -> StatsHooks:
        return StatsHooks(Path(self.directory) / self.run_id)

    def counted(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records the figures come from: all of them, or with ``once`` the first action's (its stage)."""
        stages = [r["stage"] for r in records if r.get("stage") is not None]
        if not self.once or not stages:
            return records
        return [r for r in records if r.get("stage") == min(stages)]


class StatsHooks(NoHooks):
    """One task's counters; an observer only (never answers, never refuses)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / f"{uuid.uuid4().hex}.json"
        self.lock = threading.Lock()
        self.statuses: Counter[str] = Counter()
        self.requests = self.retries = 0
        self.tokens: Counter[str] = Counter()
        self.started = time.time()
        self.flushed = 0.0
        self.rows_done = self.error_rows = 0
        self.codes: Counter[str] = Counter()  # error rows by code, of the finished batches
        self.batches: dict[int, RowResults] = {}  # batches not yet finished (rows counted at each flush)
        self.stage = _task_stage()
        self.writable = True
        self.caches: list[CacheHooks] = []
        self.timeline = Timeline()
        self.by_target: dict[int, list[int]] = {}  # deployment index -> requests, prompt, completion, cached tokens

    def meet(self, hooks: list[Hooks]) -> None:
        """The task's other hooks: the response cache's count of answers it could not store goes in the record."""
        self.caches = [hook for hook in hooks if isinstance(hook, CacheHooks)]

    def planned(self, results: RowResults) -> None:
        with self.lock:
            self.batches.setdefault(id(results), results)

    def lookup(self, unit: Unit) -> Any | None:
        with self.lock:
            self.batches.setdefault(id(unit.results), unit.results)
            due = time.time() - self.flushed >= C.STATS_FLUSH_SECONDS  # a run answered from the cache sends nothing
        if due:
            self.flush()
        return None

    def attempt(self, unit: Unit, outcome: Outcome, seconds: float) -> None:
        usage = billed_usage(outcome.body) if outcome.status == 200 else None
        with self.lock:
            self.requests += 1
            self.retries += unit.attempts > 1
            self.statuses[str(outcome.status) if outcome.status is not None else "no_response"] += 1
            if usage is not None:
                for name in TOKEN_FIELDS:
                    self.tokens[name] += getattr(usage, name) or 0
            billed = [0, 0, 0] if usage is None else [getattr(usage, name) or 0 for name in BILLED_FIELDS]
            self.timeline.add(time.time(), outcome.status == 429, *billed)
            target = self.by_target.setdefault(unit.target, [0, 0, 0, 0])
            for index, value in enumerate([1, *billed]):
                target[index] += value
            due = time.time() - self.flushed >= C.STATS_FLUSH_SECONDS
        if due:
            self.flush()

    def close(self) -> None:
        for cache in self.caches:  # its last increment is written (or not) before the last record, whatever
            cache.flush()  # the order the hooks close in
        self.flush(closed=True)

    def _rows(self) -> tuple[int, int, Counter[str]]:
        """Rows resolved, error rows and their codes so far: finished batches are tallied once and let go."""
        live_done = live_errors = 0
        live_codes: Counter[str] = Counter()
        for key, results in list(self.batches.items()):
            resolved = len(results) - len(results.unresolved())
            codes = Counter(str(error.code) for error in results.errors if error is not None)
            failed = sum(codes.values())
            if results.done.is_set():
                self.rows_done += resolved
                self.error_rows += failed
                self.codes.update(codes)
                del self.batches[key]
            else:
                live_done, live_errors = live_done + resolved, live_errors + failed
                live_codes.update(codes)
        return self.rows_done + live_done, self.error_rows + live_errors, self.codes + live_codes

    def record(self, closed: bool = False) -> dict[str, Any]:
        with self.lock:
            rows_done, error_rows, codes = self._rows()
            return {
                "requests": self.requests,
                "retries": self.retries,
                "statuses": dict(self.statuses),
                "tokens": {name: self.tokens[name] for name in TOKEN_FIELDS},
                "rows_done": rows_done,
                "error_rows": error_rows,
                "error_codes": dict(codes),
                "unstored": sum(cache.unstored for cache in self.caches),
                "started": self.started,
                "updated": time.time(),
                "closed": closed,
                "stage": self.stage,
                "timeline": self.timeline.as_record(),
                "by_target": {str(k): v for k, v in self.by_target.items()},
            }

    def flush(self, closed: bool = False) -> None:
        if not self.writable:
            return
        record = self.record(closed)
        self.flushed = record["updated"]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(f".{threading.get_ident()}.tmp")
            temporary.write_text(json.dumps(record))
            os.replace(temporary, self.path)
        except (OSError, ValueError):  # statisticsDir not writable here (or no longer): these figures are missing
            self.writable = False


def _task_stage() -> int | None:
    """The Spark stage of the task this runs in (None outside a Spark task)."""
    try:
        from pyspark.taskcontext import TaskContext  # loaded already in a Python worker
    except ImportError:
        return None
    context = TaskContext.get()
    return context.stageId() if context is not None else None


def read_records(directory: str, run_id: str) -> list[dict[str, Any]]:
    """The task records of a run that the driver can see (none when the directory is not shared with it)."""
    folder = Path(directory) / run_id
    records = []
    try:
        paths = list(folder.glob("*.json"))
    except OSError:
        return []
    for path in paths:
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # replaced while being read: the next read has it
    return records


@dataclass
class JobStatistics:
    """What a job did. ``None`` means not available here (see ``missing``); costs are estimates.

    ``str(stats)`` is a short report; ``stats.as_dict()`` the same as a dict.
    """

    rows: int | None = None
    rows_succeeded: int | None = None
    rows_failed: int | None = None
    errors_by_code: dict[str, int] = field(default_factory=dict)
    requests: int | None = None
    retries: int | None = None
    throttled: int | None = None  # 429 answers
    statuses: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    answers_not_stored: int | None = None  # answers returned but not kept in cacheDir (it stopped taking writes)
    estimated_cost: float | None = None
    prices_as_of: str | None = None
    elapsed_seconds: float | None = None
    tasks: int = 0
    missing: list[str] = field(default_factory=list)
    cascade: dict[str, Any] | None = None  # a model cascade's levels, thresholds and costs (``_cascade_stage``)
    jobs: int | None = None  # Spark jobs (stages) that ran over the output; each sends its rows again
    rows_scope: str | None = None  # which run the row figures describe (see ``ROW_SCOPES``)
    rows_sent: int | None = None  # rows every job's tasks went through: a row of two actions counts twice
    note: str | None = None  # why there are no figures (yet)
    # the job over time, every job's tasks merged: (start, requests, 429s, prompt, completion, cached tokens, cost)
    timeline: list[tuple[float, ...]] = field(default_factory=list)
    timeline_seconds: int | None = None  # the width of one bucket of ``timeline``
    requests_per_minute_limit: float | None = None  # maxRequestsPerMinute, the chart's limit line
    by_deployment: dict[str, dict[str, float]] = field(default_factory=dict)  # requests, tokens, cost

    def _repr_html_(self) -> str:
        """The report a notebook shows: figures, a chart of the job over time, errors and cost tables."""
        from spark_aoai._features.report import statistics_html

        return statistics_html(self.as_dict())

    def to_html(self, path: str) -> str:
        """Write the report as one self-contained HTML file (inline SVG and script, nothing fetched); the path."""
        from spark_aoai._features.report import write_html

        return write_html(path, self._repr_html_(), "spark_aoai job statistics")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        def show(value: Any) -> str:
            return "n/a" if value is None else f"{value:,}" if isinstance(value, int) else str(value)

        errors = ", ".join(f"{code} {count}" for code, count in sorted(self.errors_by_code.items()) if count)
        cost = "n/a" if self.estimated_cost is None else f"${self.estimated_cost:,.4f} (prices of {self.prices_as_of})"
        elapsed = "n/a" if self.elapsed_seconds is None else f"{self.elapsed_seconds:.1f} s"
        if self.note is not None:
            return self.note
        scope = f" [{self.rows_scope}]" if self.rows_scope else ""
        every = "" if not self.jobs else f" [every job: {self.jobs}, {show(self.rows_sent)} rows sent through]"
        lines = [
            f"rows {show(self.rows)}: {show(self.rows_succeeded)} ok, {show(self.rows_failed)} failed"
            + (f" ({errors})" if errors else "")
            + scope,
            f"requests {show(self.requests)}, retries {show(self.retries)}, 429s {show(self.throttled)}{every}",
            f"tokens: prompt {show(self.prompt_tokens)} (cached {show(self.cached_tokens)}), "
            f"completion {show(self.completion_tokens)} (reasoning {show(self.reasoning_tokens)}), "
            f"total {show(self.total_tokens)}",
            f"estimated cost {cost}, elapsed {elapsed}",
        ]
        if self.answers_not_stored:
            lines.append(f"answers not stored in cacheDir {show(self.answers_not_stored)}")
        if self.cascade is not None:
            lines.extend(describe_cascade(self.cascade))
        return "\n".join(lines)


def add_records(
    stats: JobStatistics,
    records: list[dict[str, Any]],
    price: Price | None,
    as_of: str,
    deployments: tuple[str, ...] = (),
) -> None:
    """Fill the request and token figures of ``stats`` from the task records."""
    if not records:
        stats.missing.extend(["requests", "retries", "throttled", "tokens", "elapsed_seconds", "answers_not_stored"])
        return
    statuses: Counter[str] = Counter()
    tokens: Counter[str] = Counter()
    for record in records:
        statuses.update(record["statuses"])
        tokens.update(record["tokens"])
    stats.tasks = len(records)
    stats.jobs = scope_of_records(records)[1]
    stats.rows_sent = sum(r["rows_done"] for r in records)
    stats.statuses = dict(statuses)
    stats.requests = sum(r["requests"] for r in records)
    stats.retries = sum(r["retries"] for r in records)
    stats.throttled = statuses.get("429", 0)
    stats.answers_not_stored = sum(r.get("unstored", 0) for r in records)
    for name in TOKEN_FIELDS:
        setattr(stats, name, tokens.get(name, 0))
    stats.elapsed_seconds = max(r["updated"] for r in records) - min(r["started"] for r in records)
    if price is not None:
        stats.estimated_cost = price.cost(tokens["prompt_tokens"], tokens["completion_tokens"], tokens["cached_tokens"])
        stats.prices_as_of = as_of
    timeline = merge(records)
    stats.timeline = [
        (start, *figures, price.cost(figures[2], figures[3], figures[4]) if price is not None else 0.0)
        for start, figures in sorted(timeline.buckets.items())
    ]
    stats.timeline_seconds = timeline.width
    stats.by_deployment = by_deployment(records, deployments, price)


def by_deployment(
    records: list[dict[str, Any]], deployments: tuple[str, ...], price: Price | None
) -> dict[str, dict[str, float]]:
    """Requests, billed tokens and cost (at the stage's price) per deployment that was sent to."""
    table: dict[str, dict[str, float]] = {}
    for record in records:
        for index, (requests, prompt, completion, cached) in record.get("by_target", {}).items():
            name = deployments[int(index)] if int(index) < len(deployments) else f"deployment {index}"
            row = table.setdefault(name, {"requests": 0, "tokens": 0, "prompt": 0, "completion": 0, "cached": 0})
            for key, value in (("requests", requests), ("prompt", prompt), ("completion", completion)):
                row[key] += value
            row["cached"] += cached
            row["tokens"] += prompt + completion
    for row in table.values():
        cost = price.cost(int(row["prompt"]), int(row["completion"]), int(row["cached"])) if price else None
        row["cost"] = cost if cost is not None else float("nan")
    return table


NOTHING_YET = (
    "no action has run over the output of this stage's last transform yet: a transform only plans the job; "
    "statistics fill in once an action (count(), collect(), show(), a write) runs over it"
)


def scope_of_records(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The records of the last Spark job (stage) over the output, and how many jobs ran."""
    stages = sorted({int(r["stage"]) for r in records if r.get("stage") is not None})
    if not stages:
        return records, 1
    return [r for r in records if r.get("stage") == stages[-1]], len(stages)


def add_rows_from_records(stats: JobStatistics, records: list[dict[str, Any]]) -> None:
    """The row figures of the last job over the output, from its tasks' records (what each batch resolved)."""
    last, jobs = scope_of_records(records)
    codes: Counter[str] = Counter()
    for record in last:
        codes.update(record.get("error_codes", {}))
    stats.rows = sum(r["rows_done"] for r in last)
    stats.rows_failed = sum(r["error_rows"] for r in last)
    stats.rows_succeeded = stats.rows - stats.rows_failed
    stats.errors_by_code = {code: count for code, count in sorted(codes.items()) if count}
    stats.rows_scope = "the last Spark job over the output" if jobs > 1 else "the one Spark job over the output"


def add_observed(stats: JobStatistics, observed: Mapping[str, Any] | None, codes: list[str]) -> None:
    """Fill the row figures of ``stats`` from the output's observed metrics (``None``: no action yet)."""
    if not observed:
        stats.missing.extend(["rows", "errors_by_code"])
        return
    stats.rows_scope = "the first action over the output (DataFrame.observe)"
    stats.rows = int(observed["rows"])
    stats.rows_failed = int(observed["failed"])
    stats.rows_succeeded = stats.rows - stats.rows_failed
    by_code = {code: int(observed[f"code_{i}"]) for i, code in enumerate(codes)}
    by_code["other"] = stats.rows_failed - sum(by_code.values())
    stats.errors_by_code = {code: count for code, count in by_code.items() if count}


@dataclass(frozen=True)
class UsageFactory:
    """The statistics hooks of a run, with the spend cap's when one is set (shipped to the executors, so it
    lives here, free of pyspark)."""

    statistics: StatsFactory
    budget: BudgetFactory | None = None
    price: Price | None = None

    def open(self) -> Hooks:
        if self.budget is None:
            return self.statistics.open()
        return ComposedHooks([self.statistics.open(), self.budget.open()])
