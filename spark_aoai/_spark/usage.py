"""Usage and cost on the Spark side: ``stage.statistics()``, ``stage.estimate(df)``, the spend cap's and the
statistics' hooks, and the progress line; ``_plugins`` plugs them into the stages.

Where each figure comes from, on classic Spark and Spark Connect alike (DataFrame API only):

- rows, rows failed and their error codes: ``DataFrame.observe`` over the output's error column (and usage
  sums when ``usageCol`` is set), delivered to the driver with the first action's result;
- requests, retries, 429s and billed tokens: the tasks' records in ``statisticsDir`` (``_stats``), readable
  on the driver in local mode or when that directory is a shared path.
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from spark_aoai._client.config import ClientConfig
from spark_aoai._core import constants as C
from spark_aoai._core.contract import ErrorCode, Operation
from spark_aoai._core.pricing import PRICES_AS_OF, price_for, price_from_param
from spark_aoai._features.budget import BudgetFactory
from spark_aoai._features.cache import check_directory
from spark_aoai._features.estimate import COUNT_FIELDS, COUNTS_SCHEMA, count_partition, summarize
from spark_aoai._features.progress import Progress, interactive
from spark_aoai._features.report import Estimate
from spark_aoai._features.stats import (
    NOTHING_YET,
    TOKEN_FIELDS,
    JobStatistics,
    StatsFactory,
    UsageFactory,
    add_observed,
    add_records,
    add_rows_from_records,
    read_records,
)
from spark_aoai.exceptions import ConfigurationError

if TYPE_CHECKING:
    from spark_aoai._engine.plan import Plan

DEFAULT_DIRECTORY = f"{tempfile.gettempdir()}/spark_aoai_statistics"
# Error codes counted one by one in the statistics (the rest are added up as "other").
COUNTED_CODES = [code.value for code in ErrorCode] + [
    "429", "content_filter", "context_length_exceeded", "BadRequest", "InternalServerError", "ServiceUnavailable",
]  # fmt: skip


def _is_local(spark: SparkSession | None) -> bool:
    try:
        master = spark.conf.get("spark.master", "") if spark is not None else ""
    except Exception:
        master = ""
    return not master or str(master).startswith("local")


def build_usage_hooks(stage: Any, config: ClientConfig, operation: Operation) -> UsageFactory | None:
    """The statistics' and spend cap's hooks of a stage's plan (an ``AzureOpenAIStage``): a fresh run (its id
    names its records and ledger) for each plan."""
    if not stage.hasParam("maxTotalTokens"):
        return None
    try:
        override = price_from_param(stage._get(stage.getParam("prices")))
    except ValueError as exc:
        raise ConfigurationError(f"prices: {exc}") from None
    price = price_for(config.deployment, override)
    if price is not None and override is None and stage._batch_mode():
        price = price.scaled(C.BATCH_PRICE_FACTOR)  # the table's prices are online ones; given prices are as given
    max_tokens = stage._get(stage.getParam("maxTotalTokens")) or 0
    max_cost = stage._get(stage.getParam("maxCost")) or 0.0
    if max_tokens < 0 or max_cost < 0:
        raise ConfigurationError("maxTotalTokens and maxCost must be more than 0 (leave them unset for no cap)")
    if stage._batch_mode():
        max_tokens = max_cost = 0  # a submitted batch cannot be stopped half way: the cap is online only (warned)
    if max_cost and price is None:
        raise ConfigurationError(
            f"maxCost: no price for deployment {config.deployment!r} in the price table; set prices={{'input': ...}}"
        )
    directory = stage._get(stage.getParam("statisticsDir"))
    if (max_tokens or max_cost) and not directory and not _is_local(SparkSession.getActiveSession()):
        raise ConfigurationError(
            "maxTotalTokens/maxCost on a cluster need statisticsDir: a path every executor shares (the cap's ledger)"
        )
    directory = directory or DEFAULT_DIRECTORY
    check_directory(directory, "", "statisticsDir")  # a file there, or no permission: said here, not in each task
    run_id = uuid.uuid4().hex
    budget = BudgetFactory(directory, run_id, max_tokens, max_cost, price) if max_tokens or max_cost else None
    deployments = tuple(target.deployment for target in config.targets)
    return UsageFactory(StatsFactory(directory, run_id, stage._batch_mode(), deployments), budget, price)


@dataclass
class Run:
    """One transform's output as the driver watches it."""

    factory: UsageFactory
    observation: Any = None
    usage_col: str | None = None
    observed: dict[str, Any] | None = None
    done: threading.Event = field(default_factory=threading.Event)
    progress: Progress | None = None
    rows_counted: bool = True  # the tasks count rows (not the texts of ``ai.similarity``'s pairs)
    requests_per_minute_limit: float | None = None

    def _wait(self) -> None:
        """Classic Spark: ``Observation.get`` blocks until the first action is over."""
        try:
            self.observed = dict(self.observation.get)
        except Exception:
            return
        self.done.set()

    def finished(self) -> bool:
        if not self.done.is_set() and self.observation is not None and _is_connect(self.observation):
            result = self.observation.get  # Spark Connect: filled in with the action's result, else empty
            result = result() if callable(result) else result
            if result:
                self.observed = dict(result)
                self.done.set()
        return self.done.is_set()


def _is_connect(observation: Any) -> bool:
    return type(observation).__module__.startswith("pyspark.sql.connect")


def _column(name: str) -> Any:
    return F.col(f"`{name}`")


_METRICS: dict[tuple[int, str, str | None], list[Column]] = {}


def _metrics(session: Any, error_col: str, usage_col: str | None) -> list[Column]:
    """The observed aggregates over the output columns; built once per session and pair of names (each
    Column op is a round trip to the JVM on classic Spark: about 60 ms of a 4-row job otherwise)."""
    key = (id(session), error_col, usage_col)
    if key not in _METRICS:
        if len(_METRICS) > 64:
            _METRICS.clear()
        error = _column(error_col)
        metrics = [F.count(F.lit(1)).alias("rows"), F.count(error).alias("failed")]
        metrics += [F.count_if(error["code"] == code).alias(f"code_{i}") for i, code in enumerate(COUNTED_CODES)]
        if usage_col is not None:
            usage = _column(usage_col)
            metrics += [F.sum(usage[name]).alias(f"usage_{name}") for name in TOKEN_FIELDS]
        _METRICS[key] = metrics
    return _METRICS[key]


def observe_output(stage: Any, plan: Plan, out: DataFrame) -> DataFrame:
    """Watch a stage's output: count rows and errors as the action runs; start the progress line."""
    factory = next((h for h in plan.hooks if isinstance(h, UsageFactory)), None)
    if factory is None:
        return out
    limit = plan.config.limits.max_requests_per_minute
    run = Run(factory, rows_counted=plan.combine is None, requests_per_minute_limit=limit)
    stage._usage_run = run  # type: ignore[attr-defined]
    if out.isStreaming:  # Observation does not support streaming; the task records still count
        return out
    names = {column.field.param: column.name for column in plan.outputs}
    run.usage_col = names.get("usageCol")
    metrics = _metrics(out.sparkSession, names["errorCol"], run.usage_col)
    run.observation = Observation(f"spark_aoai_{factory.statistics.run_id}")
    out = out.observe(run.observation, *metrics)
    if not _is_connect(run.observation):
        threading.Thread(target=run._wait, name="spark_aoai-observation", daemon=True).start()
    if progress_wanted(stage):
        known = getattr(stage, "_estimated_rows", None)
        total = known[1] if known is not None and known[0] is _input_of(stage) else None
        stats = factory.statistics
        label = str(stage._get(stage.getParam("deploymentName")))
        noun = "rows"
        if plan.combine is not None:  # the tasks count the texts they embed: a row's parts
            total, noun = None if total is None else total * plan.combine.parts, "texts"
        run.progress = Progress(
            label, stats.directory, stats.run_id, run.finished, total, noun=noun, price=factory.price
        ).start()
    return out


def progress_wanted(stage: Any) -> bool:
    """``progress=True``, or left unset in an interactive session (a notebook, a console)."""
    if not stage.hasParam("progress"):
        return False
    wanted = stage._get(stage.getParam("progress"))
    return bool(wanted or (wanted is None and interactive()))


def _input_of(stage: Any) -> Any:
    return getattr(stage, "_last_input", None)


class UsageMethods:
    """``statistics()`` and ``estimate()``, mixed into the stages (before ``AzureOpenAIStage``)."""

    def transform(self, dataset: DataFrame, params: Any = None) -> DataFrame:
        self._last_input = dataset  # the progress line knows the row total when estimate() counted this input
        return super().transform(dataset, params)  # type: ignore[misc]

    def statistics(self, timeout: float = C.STATS_OBSERVATION_WAIT_SECONDS) -> JobStatistics:
        """What the last ``transform``'s output cost once an action ran over it.

        >>> out = chat.transform(df); out.write.parquet(path)       # doctest: +SKIP
        >>> print(chat.statistics())                                # doctest: +SKIP
        rows 1,000: 998 ok, 2 failed (content_filter 2) ...

        Each figure says its scope: rows and error codes are those of the last Spark job over the output
        (``rows_scope``; from the tasks' records, else the first action's ``DataFrame.observe``); requests,
        retries, 429s, tokens, cost and ``rows_sent`` add up every job (``jobs``), since each action sends again.
        Before any action, ``note`` says why there is nothing yet.
        """
        run: Run | None = getattr(self, "_usage_run", None)
        if run is None:
            raise ValueError("statistics(): this stage has not transformed a DataFrame yet")
        deadline = time.monotonic() + timeout
        while not run.finished() and time.monotonic() < deadline and run.observation is not None:
            run.done.wait(0.05)
        stats = JobStatistics()
        spec = run.factory.statistics
        records = spec.counted(read_records(spec.directory, spec.run_id))
        if not records and not run.observed:
            stats.note = NOTHING_YET
        if records and run.rows_counted and not spec.once:
            add_rows_from_records(stats, records)  # each job's own rows: the last one's are shown
        else:  # no records here (a cluster without a shared statisticsDir), batch mode, or pairs of texts
            add_observed(stats, run.observed, COUNTED_CODES)
        add_records(stats, records, run.factory.price, PRICES_AS_OF, spec.deployments)
        stats.requests_per_minute_limit = run.requests_per_minute_limit
        if stats.requests is None and run.observed and run.usage_col is not None:  # no records: the usage column
            for name in TOKEN_FIELDS:
                setattr(stats, name, run.observed.get(f"usage_{name}"))
            stats.missing.remove("tokens")
        return stats

    def estimate(
        self, df: DataFrame, maxRequestsPerMinute: float | None = None, maxTokensPerMinute: float | None = None
    ) -> dict[str, Any]:
        """A dry run over ``df``: the job's requests and prompt tokens (real tokenizer), nothing sent. ``minutes``
        is the time at the deployment's rates: the arguments, else the stage's Params of the same names.

        >>> chat.estimate(df, maxRequestsPerMinute=600, maxTokensPerMinute=100_000)   # doctest: +SKIP
        {'rows': 1000, 'invalid_rows': 0, 'requests': 1000, 'prompt_tokens': 23190,
         'max_completion_tokens': 200000, 'estimated_cost': (0.058, 2.058), 'minutes': 2.0, ...}
        """
        from spark_aoai._planning.bpe import tokenizer_name

        stage: Any = self
        plan, inputs = stage._plan(df.schema, df.sparkSession)
        model = plan.config.deployment
        answers = plan.operation.route.path != "embeddings"
        safe = {name: f"_spark_aoai_in_{i}" for i, name in enumerate(inputs.columns)}  # a template reads several
        function = count_partition(plan, inputs.renamed(safe), model, answers)
        selected = df.select(*[_column(name).alias(alias) for name, alias in safe.items()])
        counted = selected.mapInArrow(function, _counts_ddl())
        row = counted.agg(*[F.sum(name).alias(name) for name in COUNT_FIELDS]).collect()[0]
        counts = {name: int(row[name] or 0) for name in COUNT_FIELDS}
        stage._estimated_rows = (df, counts["rows"])
        price = next((h.price for h in plan.hooks if isinstance(h, UsageFactory)), None)
        requests = maxRequestsPerMinute or stage._get(stage.maxRequestsPerMinute)
        tokens = maxTokensPerMinute or stage._get(stage.maxTokensPerMinute)
        summary = summarize(counts, price, tokenizer_name(model), requests, tokens, PRICES_AS_OF)
        return Estimate(summary)  # a dict, shown as a report in a notebook (``_report``)


def _counts_ddl() -> str:
    return ", ".join(f"{f.name} long" for f in COUNTS_SCHEMA)
