"""Model cascades on the driver: the Params, the calibration pass, the routed pass and ``statistics()``.

``cascadeDeployments=[cheap, ..., final]`` replaces ``deploymentName``. ``transform`` then

1. plans each level as the stage itself with that level's deployment (cheap levels ask for ``logprobs``),
   sharing one spend-cap ledger, so a cap is the whole cascade's;
2. draws a uniform random sample of ``cascadeSampleSize`` rows (``orderBy(rand(seed)).limit(n)``, a top-n per
   partition) and sends it to every level at once: this action runs inside ``transform``;
3. chooses each cheap level's threshold on the driver (``_calibrate``);
4. returns the routed pass: one ``mapInArrow`` in which every batch goes through the levels (``_cascade``).

With ``cacheDir`` a re-run reuses both passes' answers (each level's requests are the same); without it the
sample rows are asked again in the routed pass. Free of anything but the DataFrame API.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any, ClassVar

from pyspark.ml.param import TypeConverters
from pyspark.sql import DataFrame, Observation
from pyspark.sql import functions as F
from pyspark.sql.types import StructField, StructType

from spark_aoai._core import constants as C
from spark_aoai._core.pricing import PRICES_AS_OF
from spark_aoai._engine.cascade import CASCADE_ARROW_TYPE, SAMPLE_FIELDS, Cascade, cascade_partition, sample_partition
from spark_aoai._engine.failover import SECRET_KEYS, split_deployments
from spark_aoai._engine.plan import Plan
from spark_aoai._features.stats import JobStatistics, UsageFactory, add_records, read_records
from spark_aoai._planning.calibrate import Level, calibrate, interval, upper_bound
from spark_aoai._planning.confidence import LOGPROB_OPTIONS, Scored
from spark_aoai._planning.param_values import is_reasoning_deployment, real, whole
from spark_aoai._spark.accessors import HasCascadeAccessors
from spark_aoai._spark.params import _param
from spark_aoai._spark.plugins import observe
from spark_aoai._spark.spark_types import require_new_column, spark_type
from spark_aoai.exceptions import ConfigurationError

CASCADE_COLUMN = "_spark_aoai_cascade"
HINT = "e.g. cascadeDeployments=['gpt-4.1-nano', 'gpt-4.1']"


def cascade_levels(value: Any) -> str:
    """``cascadeDeployments``: two or more levels, each a deployment name, a ``deployments``-style dict or a
    list of them (that level's failover); stored as JSON lists of dicts, without credentials."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigurationError(f"cascadeDeployments must be a list of two or more deployments ({HINT})") from None
    if not isinstance(value, (list, tuple)) or len(value) < 2:
        raise ConfigurationError(f"cascadeDeployments must be a list of two or more deployments ({HINT})")
    levels = []
    for level in value:
        entries = (
            [{"deploymentName": level}] if isinstance(level, str) else [level] if isinstance(level, dict) else level
        )
        if not isinstance(entries, (list, tuple)) or any(
            isinstance(e, dict) and set(e) & set(SECRET_KEYS) for e in entries
        ):
            raise ConfigurationError(
                f"cascadeDeployments: {level!r} is not a deployment name, a dict or a list of dicts (credentials go "
                "to the constructor or setParams, never into a saved Param)"
            )
        levels.append(json.loads(split_deployments(list(entries))[0]))
    return json.dumps(levels)


class HasCascade(HasCascadeAccessors):
    """A model cascade: cheap deployments answer what they are sure of, the final one the rest."""

    cascadeDeployments = _param(
        "cascadeDeployments",
        "deployments cheapest first, the final (reference) one last: names, deployments-style dicts or lists of "
        "them (failover); replaces deploymentName",
        cascade_levels,
    )
    cascadeTarget = _param(
        "cascadeTarget", "share of all rows that must agree with the final deployment (e.g. 0.95)",
        real("cascadeTarget", 0, 1, above=True),
    )  # fmt: skip
    cascadeConfidence = _param(
        "cascadeConfidence",
        "probability that cascadeTarget is met (e.g. 0.95)",
        real("cascadeConfidence", 0, 1, above=True),
    )
    cascadeSampleSize = _param(
        "cascadeSampleSize", "random rows every level answers, to calibrate the thresholds",
        whole("cascadeSampleSize", 30, 1_000_000),
    )  # fmt: skip
    cascadeCol = _param(
        "cascadeCol", "optional column: struct<deployment, confidence, threshold, method> of each row",
        TypeConverters.toString,
    )  # fmt: skip
    _param_defaults: ClassVar[dict[str, Any]] = {
        "cascadeTarget": 0.95,
        "cascadeConfidence": 0.95,
        "cascadeSampleSize": 500,
    }


class CascadeMethods:
    """``transform`` and ``statistics()`` of a stage with ``cascadeDeployments`` (mixed in before the others)."""

    def _cascading(self) -> bool:
        stage: Any = self
        return bool(stage.hasParam("cascadeDeployments") and stage._get(stage.cascadeDeployments))

    def _take_secrets(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        stage: Any = self
        levels = kwargs.get("cascadeDeployments")
        if isinstance(levels, (list, tuple)):  # each level's credentials are kept aside, like deployments'
            listed = [[lv] if isinstance(lv, (str, dict)) else list(lv) for lv in levels]
            entries: list[list[dict[str, Any]]] = [
                [{"deploymentName": e} if isinstance(e, str) else dict(e) for e in level] for level in listed
            ]
            stage._secrets["cascadeDeployments"] = [split_deployments(level)[1] for level in entries]
            kwargs["cascadeDeployments"] = [
                [{k: v for k, v in e.items() if k not in SECRET_KEYS} for e in level] for level in entries
            ]
        return super()._take_secrets(kwargs)  # type: ignore[misc, no-any-return]

    def _check_settings(self, given: frozenset[str] | None = None) -> None:
        super()._check_settings(given)  # type: ignore[misc]
        if not self._cascading():
            return
        stage: Any = self
        clash = [p for p in ("deploymentName", "deployments") if stage._get(stage.getParam(p))]
        if clash and (given is None or "cascadeDeployments" in given or set(clash) & set(given)):
            raise ConfigurationError(f"cascadeDeployments replaces {clash[0]}: give one of them, not both")
        if stage.getOrDefault(stage.mode) == "batch":
            raise ConfigurationError(
                "cascadeDeployments runs online (mode='online'): its thresholds come from a sample every level "
                "answers before the rows are routed, passes that batch jobs cannot chain; set mode='online', or "
                "drop cascadeDeployments and run the final deployment alone in batch mode"
            )
        if stage.getOrDefault(stage.apiType) != "chat_completions":
            raise ConfigurationError(
                "cascadeDeployments reads chat completions' logprobs: use apiType='chat_completions'"
            )
        levels = json.loads(stage._get(stage.cascadeDeployments))
        for name in [entry["deploymentName"] for level in levels[:-1] for entry in level]:  # a spare's too
            if stage._get(stage.reasoningModel) or is_reasoning_deployment(name):
                raise ConfigurationError(
                    f"cascadeDeployments: {name!r} is a reasoning model, which returns no logprobs to measure its "
                    "confidence; only the final (last) deployment may be one"
                )

    def _plan(self, schema: Any, spark: Any) -> Any:
        if self._cascading():
            raise ConfigurationError(
                "cascadeDeployments runs in transform() only (its thresholds come from a sample pass): not in a UDF, "
                "a SQL function, estimate() or batch mode"
            )
        return super()._plan(schema, spark)  # type: ignore[misc]

    # -- the transform --------------------------------------------------------------------------------------

    def _level_stages(self) -> tuple[list[Any], list[Any]]:
        """Each level's stage (the cheap ones ask for logprobs) and each cheap level's sampler: the stage that
        answers a row once more when its answer had no logprobs (``CASCADE_SECOND_ANSWER``)."""
        stage: Any = self
        levels = json.loads(stage._get(stage.cascadeDeployments))
        secrets = stage._secrets.get("cascadeDeployments") or [[{} for _ in level] for level in levels]
        extra = json.loads(stage._get(stage.extraBody) or "{}")
        stages, samplers = [], []
        for position, (entries, own) in enumerate(zip(levels, secrets, strict=True)):
            level = stage.copy()
            level._secrets = {k: v for k, v in stage._secrets.items() if k not in ("cascadeDeployments", "deployments")}
            for name in ("cascadeDeployments", "cascadeCol", "deploymentName"):
                level.clear(level.getParam(name))
            level._set(deployments=json.dumps(entries))
            level._secrets["deployments"] = own if len(own) == len(entries) else [{} for _ in entries]
            if position < len(levels) - 1:  # the cheap levels say how sure they are
                sampler = level.copy()
                sampler._secrets = dict(level._secrets)
                sampler._set(extraBody=json.dumps({**extra, **C.CASCADE_SECOND_ANSWER}))
                samplers.append(sampler)
                level._set(extraBody=json.dumps({**extra, **LOGPROB_OPTIONS}))
            stages.append(level)
        return stages, samplers

    def _transform(self, dataset: DataFrame) -> DataFrame:
        if not self._cascading():
            return super()._transform(dataset)  # type: ignore[misc, no-any-return]
        stage: Any = self
        stage._check_settings()
        levels, sampler_stages = self._level_stages()
        planned = [level._plan(dataset.schema, dataset.sparkSession) for level in levels]
        second = [sampler._plan(dataset.schema, dataset.sparkSession)[0] for sampler in sampler_stages]
        every = _one_ledger([replace(p, operation=Scored(p.operation)) for p, _ in planned[:-1]] + [planned[-1][0]]
                            + second)  # fmt: skip
        plans, samplers = every[: len(levels)], every[len(levels) :]
        names = tuple(p.config.deployment for p in plans)
        prepared = levels[-1]._prepare(dataset, (plans[-1], planned[-1][1]))
        column = stage._get(stage.cascadeCol)
        if column:
            require_new_column(dataset.schema, column, "cascadeCol")
        cascade = Cascade(tuple(plans), names, samplers=tuple(samplers))
        size = stage.getOrDefault(stage.cascadeSampleSize)
        ddl = ", ".join(f"{name} {spark_type(kind).simpleString()}" for name, kind in SAMPLE_FIELDS)
        sample = prepared.renamed.orderBy(F.rand(C.CASCADE_SAMPLE_SEED)).limit(size)
        rows = sample.mapInArrow(sample_partition(cascade, prepared.inputs), ddl).collect()
        target, confidence = stage.getOrDefault(stage.cascadeTarget), stage.getOrDefault(stage.cascadeConfidence)
        cheap = range(len(names) - 1)
        calibrated = calibrate(
            names[:-1],
            [[row["scores"][level] for row in rows] for level in cheap],
            [[bool(row["disagree"][level]) for row in rows] for level in cheap],
            target,
            confidence,
        )
        routed = replace(cascade, thresholds=tuple(level.threshold for level in calibrated))
        out_schema = StructType(
            [*prepared.out_schema.fields, StructField(CASCADE_COLUMN, spark_type(CASCADE_ARROW_TYPE))]
        )
        out = prepared.renamed.mapInArrow(cascade_partition(routed, prepared.inputs), out_schema)
        out = out.toDF(*prepared.original, *plans[-1].names, CASCADE_COLUMN)
        observation = Observation(f"spark_aoai_cascade_{id(routed)}_{time.monotonic_ns()}")
        counts = [F.sum(F.when(F.col(f"{CASCADE_COLUMN}.deployment") == n, 1).otherwise(0)).alias(f"level_{i}")
                  for i, n in enumerate(names)]  # fmt: skip
        out = out.observe(observation, F.count(F.lit(1)).alias("rows"), *counts)
        out = out.withColumnRenamed(CASCADE_COLUMN, column) if column else out.drop(CASCADE_COLUMN)
        out = observe(levels[-1], plans[-1], out)
        stage._usage_run = getattr(levels[-1], "_usage_run", None)
        if stage._usage_run is not None:  # the final level's tasks see only the rows routed to it: rows come
            stage._usage_run.rows_counted = False  # from the observation over the whole output
        stage._cascade_run = CascadeRun(names, plans, calibrated, rows, observation, target, confidence, samplers)
        return out

    def statistics(self, timeout: float = 5.0) -> JobStatistics:
        """``statistics()`` of the last transform; with a cascade, every level's requests, tokens and cost added
        up, and ``cascade``: rows per deployment, thresholds, the sample's agreement and the final-only cost."""
        stats: JobStatistics = super().statistics(timeout)  # type: ignore[misc]
        run: CascadeRun | None = getattr(self, "_cascade_run", None)
        if run is None or not self._cascading():
            return stats
        return run.report(stats, timeout)


def _one_ledger(plans: list[Plan]) -> list[Plan]:
    """The levels' plans charging one spend-cap ledger (the first level's run), so a cap is the cascade's."""
    factories = [next((h for h in p.hooks if isinstance(h, UsageFactory)), None) for p in plans]
    first = factories[0]
    if first is None or first.budget is None:
        return plans
    shared = []
    for plan, factory in zip(plans, factories, strict=True):
        if factory is None or factory.budget is None:
            shared.append(plan)
            continue
        budget = replace(factory.budget, run_id=first.budget.run_id)
        hooks = tuple(replace(h, budget=budget) if h is factory else h for h in plan.hooks)
        shared.append(replace(plan, hooks=hooks))
    return shared


class CascadeRun:
    """What the driver keeps of one cascade transform, for ``statistics()``."""

    def __init__(self, names: tuple[str, ...], plans: list[Plan], levels: list[Level], sample: list[Any],
                 observation: Observation, target: float, confidence: float, samplers: list[Plan]) -> None:  # fmt: skip
        self.names, self.plans, self.levels, self.sample = names, plans, levels, sample
        self.observation, self.target, self.confidence, self.samplers = observation, target, confidence, samplers

    def _counts(self, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                result = self.observation.get
                result = result() if callable(result) else result
                if result:
                    return dict(result)
            except Exception:
                pass
            time.sleep(0.05)
        return None

    def report(self, stats: JobStatistics, timeout: float) -> JobStatistics:
        counts = self._counts(timeout)
        per_level, total = [], JobStatistics()
        every: list[dict[str, Any]] = []
        costs: list[float | None] = []
        for position, plan in enumerate(self.plans):
            level_stats, records, price = JobStatistics(), [], None
            for asking in [plan, *self.samplers[position : position + 1]]:  # a cheap level: its second answers too
                factory = next((h for h in asking.hooks if isinstance(h, UsageFactory)), None)
                if factory is not None:
                    records += factory.statistics.counted(
                        read_records(factory.statistics.directory, factory.statistics.run_id)
                    )
                    price = factory.price
            if records:
                every += records
                add_records(level_stats, records, price, PRICES_AS_OF)
            costs.append(level_stats.estimated_cost)
            calibrated = self.levels[position] if position < len(self.levels) else None
            per_level.append({
                "deployment": self.names[position],
                "rows": None if counts is None else int(counts.get(f"level_{position}") or 0),
                "threshold": None if calibrated is None else calibrated.threshold,
                "final": calibrated is None,
                "requests": level_stats.requests,
                "total_tokens": level_stats.total_tokens,
                "cost": level_stats.estimated_cost,
            })  # fmt: skip
        final_factory = next((h for h in self.plans[-1].hooks if isinstance(h, UsageFactory)), None)
        add_records(total, every, None, PRICES_AS_OF)
        for name in ("requests", "retries", "throttled", "prompt_tokens", "completion_tokens", "total_tokens",
                     "cached_tokens", "reasoning_tokens", "elapsed_seconds", "tasks", "statuses"):  # fmt: skip
            setattr(stats, name, getattr(total, name))
        cost = None if any(c is None for c in costs) else sum(c for c in costs if c is not None)
        stats.estimated_cost = cost
        rows = stats.rows if stats.rows is not None else (None if counts is None else int(counts["rows"]))
        final_only = self._final_only(final_factory, rows)
        sample = self._sample()
        stats.cascade = {
            "target": self.target,
            "confidence": self.confidence,
            "levels": per_level,
            "calibration": [level.as_dict() for level in self.levels],
            "sample": sample,
            "cost": cost,
            "final_only_cost": final_only,
            "saving": None if cost is None or not final_only else 1 - cost / final_only,
        }
        return stats

    def _final_only(self, factory: UsageFactory | None, rows: int | None) -> float | None:
        """What the final deployment alone would have cost: its mean cost per sample row times the rows."""
        price = factory.price if factory is not None else None
        paid = [row["tokens"][-1] for row in self.sample if row["tokens"][-1][3]]  # not answered from the cache
        if price is None or not paid or rows is None:
            return None
        mean = sum(price.cost(p, c, cached) for p, c, cached, _ in paid) / len(paid)
        return mean * rows

    def _sample(self) -> dict[str, Any]:
        """The sample's agreement of the first cheap level with the final one, with its interval, and the bound."""
        n = len(self.sample)
        answered = [row for row in self.sample if row["scores"][0] is not None]
        agreeing = sum(not row["disagree"][0] for row in answered)
        fields: dict[str, int] = {}
        for row in answered:
            for path in row["fields"][0] or ():
                fields[path or "(value)"] = fields.get(path or "(value)", 0) + 1
        kept_wrong = sum(level.kept_disagreeing for level in self.levels)
        risk = 1 - self.confidence
        methods: dict[str, int] = {}
        for row in self.sample:
            method = (row["methods"] or [None])[0] or "none"
            methods[method] = methods.get(method, 0) + 1
        return {
            "rows": n,
            "methods": methods,
            "agreement": agreeing / len(answered) if answered else None,
            "interval": interval(agreeing, len(answered), self.confidence),
            "disagreeing_fields": fields,
            "disagreement_bound": upper_bound(kept_wrong, n, risk) if n else 1.0,
            "tokens": [sum(row["tokens"][level][3] for row in self.sample) for level in range(len(self.names))],
        }
