"""The base of every stage: Params -> executor settings (in one function), output columns from the
operation's declarations, and ``mapInArrow`` (DataFrame API only, so Spark Connect works).

Credentials are constructor arguments kept in ``_secrets``, never Params: not saved, not shown.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pyspark.ml import Transformer
from pyspark.ml.param import Param
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructField, StructType

from spark_aoai._client.config import ClientConfig, Limits, resolve_client_config
from spark_aoai._client.retry import RetryPolicy
from spark_aoai._core.columns import SOURCE_FIELD, cost_field
from spark_aoai._core.contract import Operation, OutputField
from spark_aoai._engine.failover import SECRET_KEYS as SECRET_ARGUMENTS  # and each of ``deployments``' own
from spark_aoai._engine.failover import resolve_deployments, split_deployments
from spark_aoai._engine.hooks import HookFactory
from spark_aoai._engine.plan import Combine, Inputs, OutputColumn, Plan, arrow_partition
from spark_aoai._features.stats import UsageFactory
from spark_aoai._planning.param_values import RULES, broken
from spark_aoai._spark.batch_params import HasBatch
from spark_aoai._spark.check import CheckResult, check
from spark_aoai._spark.params import (
    HasCache,
    HasConnection,
    HasFailover,
    HasOutputs,
    HasThroughput,
    check_param_names,
    collect_defaults,
)
from spark_aoai._spark.plugins import hook_factories, observe
from spark_aoai._spark.spark_types import require_new_column, spark_type
from spark_aoai._spark.surface import install as show_fixes_first
from spark_aoai.exceptions import ConfigurationError


def infer_concurrent_tasks(spark: SparkSession | None) -> int:
    """How many tasks run at once, from the session's configuration (used to split explicit budgets)."""
    if spark is None:
        return 1

    def conf(key: str) -> str | None:
        try:
            return spark.conf.get(key, None)
        except Exception:  # Spark Connect may refuse some keys
            return None

    master = conf("spark.master") or ""
    if master.startswith("local"):
        cores = master[master.find("[") + 1 : master.find("]")].split(",")[0] if "[" in master else "1"
        if cores == "*":
            return os.cpu_count() or 1
        return max(1, int(cores)) if cores.isdigit() else 1
    task_cpus = int(conf("spark.task.cpus") or 1)
    instances, cores_per = conf("spark.executor.instances"), conf("spark.executor.cores")
    if instances and cores_per and instances.isdigit() and cores_per.isdigit():
        return max(1, int(instances) * int(cores_per) // task_cpus)
    parallelism = conf("spark.default.parallelism")
    return max(1, int(parallelism)) if parallelism and parallelism.isdigit() else 1


class AzureOpenAIStage(
    Transformer, HasConnection, HasThroughput, HasOutputs, HasCache, HasFailover, HasBatch, DefaultParamsReadable,
    DefaultParamsWritable,
):  # fmt: skip
    """What every stage shares: Params, credentials, validation on the driver, then ``mapInArrow``."""

    _stage_defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Each stage's constructor shows its Params (``help()``, notebooks' signature pop-ups) keyword-only."""
        super().__init_subclass__(**kwargs)
        names = sorted(name for name in dir(cls) if isinstance(getattr(cls, name, None), Param))
        keyword = inspect.Parameter.KEYWORD_ONLY
        cls.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter(name, keyword, default=None) for name in [*names, *SECRET_ARGUMENTS]]
        )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self._setDefault(**collect_defaults(type(self)))
        self._secrets: dict[str, Any] = {}
        self.setParams(**kwargs)
        self._check_settings()  # the constructor's arguments are the whole configuration asked for

    def setParams(self, **kwargs: Any) -> Any:
        """Set Params by name (credentials are kept aside); an unknown name is refused with the nearest one, a
        wrong value or a conflict among the Params of this call with what to change."""
        params = self._take_secrets(dict(kwargs))
        check_param_names(self, list(params))
        self._set(**params)
        self._check_settings(frozenset(params))
        return self

    def _set(self, **kwargs: Any) -> Any:
        """Set Params by name, each through its converter; a wrong value is a ConfigurationError naming it."""
        for name, value in kwargs.items():
            param = self.getParam(name)
            try:
                self._paramMap[param] = value if value is None else param.typeConverter(value)
            except TypeError as exc:
                raise ConfigurationError(f"{name}: {exc}") from None
        return self

    def set(self, param: Param, value: Any) -> None:
        """Set one Param (as ``load`` and pipelines do); a wrong value is refused naming the Param."""
        self._shouldOwn(param)
        self._set(**{param.name: value})

    def copy(self, extra: dict[Param, Any] | None = None) -> Any:
        """A copy with ``extra`` Params (a Pipeline's or a grid's): the result's settings are checked together."""
        that = super().copy(extra)
        if any(isinstance(p, Param) and p.parent == self.uid for p in extra or {}):
            that._check_settings()
        return that

    def _check_settings(self, given: frozenset[str] | None = None) -> None:
        """Refuse settings that are wrong together (``RULES``): all of them, or those among ``given`` only, so
        Params set one at a time (``setParams``, ``set``) are never refused half way; ``transform`` checks all."""
        problem = broken(RULES, lambda name: self._get(self.getParam(name)), self.hasParam, given)
        if problem:
            raise ConfigurationError(problem)

    def _take_secrets(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Move credentials out of the arguments into a private, unpersisted attribute."""
        for name in SECRET_ARGUMENTS:
            if name in kwargs:
                value = kwargs.pop(name)
                if value is not None:
                    self._secrets[name] = value
        if kwargs.get("deployments") is not None:  # each deployment's credential is kept aside too
            kwargs["deployments"], self._secrets["deployments"] = split_deployments(kwargs["deployments"])
        return {k: v for k, v in kwargs.items() if v is not None}

    def setCredentials(
        self,
        apiKey: str | None = None,
        aadToken: str | None = None,
        tokenProvider: Callable[[], Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Set credentials (e.g. after ``load``); they are never saved with the stage."""
        self._take_secrets({"apiKey": apiKey, "aadToken": aadToken, "tokenProvider": tokenProvider, "headers": headers})
        return self

    def _get(self, param: Any) -> Any:
        return self.getOrDefault(param) if self.isDefined(param) else None

    # -- what each stage defines ----------------------------------------------------------------------------

    def _input_column(self, schema: StructType) -> str:
        """Check the input column(s) against the schema; the name of the column the items come from."""
        raise NotImplementedError

    def _inputs(self, schema: StructType) -> Inputs:
        """The columns the items come from (one, unless the stage reads rows: a prompt template)."""
        return Inputs((self._input_column(schema),))

    def _operation(self, config: ClientConfig) -> Operation:
        raise NotImplementedError

    def _vector_output(self) -> bool:
        return False

    def _combine(self) -> Combine | None:
        """How a row's item splits into the operation's items (a pair's two texts); None: it is one."""
        return None

    # -- Params -> settings, in one place ------------------------------------------------------------------

    def _client_config(self, spark: SparkSession | None) -> ClientConfig:
        on_systemic = self.getOrDefault(self.onSystemicError)
        concurrent = self._get(self.concurrentTasks)
        limits = Limits(
            concurrency=self.getOrDefault(self.concurrency),
            max_requests_per_minute=self._get(self.maxRequestsPerMinute) or None,
            max_tokens_per_minute=self._get(self.maxTokensPerMinute) or None,
            concurrent_tasks=concurrent or infer_concurrent_tasks(spark),
            deadline_seconds=self._get(self.deadlineSeconds) or None,
            connect_timeout=self.getOrDefault(self.connectTimeout),
            read_timeout=self.getOrDefault(self.requestTimeout),
        )
        retry = RetryPolicy(
            max_attempts=self.getOrDefault(self.maxAttempts),
            max_retry_after=self.getOrDefault(self.maxRetryAfterSeconds),
        )

        def connect(deployment: str, endpoint: str | None, own: dict[str, Any]) -> ClientConfig:
            # a deployment's own credential and headers, else the stage's
            credential = own if any(k in own for k in SECRET_ARGUMENTS[:3]) else self._secrets
            secrets = {**credential, "headers": own.get("headers", self._secrets.get("headers"))}
            return resolve_client_config(
                deployment=deployment,
                endpoint=endpoint or self._get(self.endpoint),
                api_version=self._get(self.apiVersion),
                api_style=self.getOrDefault(self.apiStyle),
                api_key=secrets.get("apiKey"),
                aad_token=secrets.get("aadToken"),
                token_provider=secrets.get("tokenProvider"),
                headers=secrets.get("headers"),
                retry=retry,
                limits=limits,
                verify=self._get(self.caBundle) or True,
                fail_on_error=self.getOrDefault(self.failOnError),
                fail_on_systemic=on_systemic == "fail",
            )

        listed = self._get(self.deployments)
        return resolve_deployments(listed, self._secrets.get("deployments"), self._get(self.deploymentName), connect)

    def _output_columns(
        self, operation: Operation, schema: StructType | None, extra: tuple[OutputField, ...] = ()
    ) -> tuple[OutputColumn, ...]:
        """Each declared output under its column name: the Param's value, else the field's default.

        Defaults never collide with the input: when the default error column (``error``) is already there
        (an earlier stage's), the error column is named after this stage's output column (``embedding_error``).
        """
        existing = set(schema.fieldNames()) if schema is not None else set()
        columns = []
        value_name = None
        for field in (*operation.outputs, SOURCE_FIELD, *extra):  # type: ignore[attr-defined]
            param = self.getParam(field.param) if self.hasParam(field.param) else None
            name = self._get(param) if param is not None else None
            name = name or field.default_name
            if field.param == "errorCol" and param is not None and not self.isSet(param) and value_name:
                own_output = value_name in existing and self._is_own_output(schema, value_name, str(name))
                if name in existing and not own_output:
                    name = f"{value_name}_error"
            if name:
                columns.append(OutputColumn(field, str(name)))
                value_name = value_name or str(name)
        names = [c.name for c in columns]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ConfigurationError(f"output columns must have distinct names, {duplicated} is used twice")
        return tuple(columns)

    @staticmethod
    def _is_own_output(schema: StructType | None, value_name: str, error_name: str) -> bool:
        """Whether ``schema`` already holds this stage's value and error columns (a re-run over its output)."""
        from spark_aoai._core.contract import ROW_ERROR_ARROW_TYPE

        if schema is None or value_name not in schema.fieldNames() or error_name not in schema.fieldNames():
            return False
        return bool(schema[error_name].dataType == spark_type(ROW_ERROR_ARROW_TYPE))

    def _plan(self, schema: StructType | None, spark: SparkSession | None) -> tuple[Plan, Inputs | None]:
        """Validate on the driver and build what the executors run; the input columns when a schema is given."""
        self._check_settings()
        inputs = self._inputs(schema) if schema is not None else None
        config = self._client_config(spark)
        operation = self._operation(config)
        hooks = hook_factories(self, config, operation)  # the plug-ins, in their one order (``_plugins``)
        outputs = self._output_columns(operation, schema, cost_fields(self, config, hooks))
        dedup = self.getOrDefault(self.dedup)
        return Plan(config, operation, outputs, hooks, dedup=dedup, combine=self._combine()), inputs

    def _udf_plan(self) -> Plan:
        """The plan of a column-expression UDF or a SQL function: those send online, inside the user's query."""
        if self._batch_mode():
            raise ConfigurationError("mode='batch' is for transform and submit; a UDF or SQL function sends online")
        show_fixes_first()
        return self._plan(None, SparkSession.getActiveSession())[0]

    def check(self) -> CheckResult:
        """Send one minimal request from the driver, where the job's requests would go (about 25 tokens for
        chat, 1 for embeddings); a bad key, deployment, host or certificate raises the ``SystemicError`` a
        task would raise, its first line naming the setting to change.

        >>> chat.check()  # doctest: +SKIP
        ok: endpoint host x.openai.azure.com, deployment 'gpt-4o' answered in 0.41 s (26 tokens billed)
        """
        plan = self._plan(None, SparkSession.getActiveSession())[0]
        return check(plan, self.getOrDefault(self.getParam("apiType")) if self.hasParam("apiType") else None)

    # -- the Transformer ------------------------------------------------------------------------------------

    def _batch_mode(self) -> bool:
        return bool(self.getOrDefault(self.mode) == "batch")

    def _transform(self, dataset: DataFrame) -> DataFrame:
        prepared = self._prepare(dataset)
        function = arrow_partition(prepared.plan, prepared.inputs)
        return self._finish(prepared, prepared.renamed.mapInArrow(function, prepared.out_schema))

    def _prepare(self, dataset: DataFrame, planned: tuple[Plan, Inputs | None] | None = None) -> Prepared:
        """Plan on the driver (unless ``planned`` is given: a cascade's final level) and rename the input for
        ``mapInArrow`` (which cannot take dotted names)."""
        schema = dataset.schema
        plan, inputs = planned or self._plan(schema, dataset.sparkSession)
        assert inputs is not None
        if self._is_own_output(schema, plan.names[0], plan.names[1]):  # re-run over its own output: replace
            replaced = [name for name in plan.names if name in schema.fieldNames() and name not in inputs.columns]
            dataset = dataset.drop(*replaced)
            schema = dataset.schema
        for column in plan.outputs:
            require_new_column(schema, column.name, column.field.param)
        original = schema.fieldNames()
        safe = [f"_spark_aoai_in_{i}" for i in range(len(original))]
        fields = [StructField(s, f.dataType, f.nullable, f.metadata) for s, f in zip(safe, schema.fields, strict=True)]
        return Prepared(
            plan,
            inputs.renamed(dict(zip(original, safe, strict=True))),
            dataset.toDF(*safe),
            tuple(original),
            StructType(fields + output_fields(plan)),
        )

    def _finish(self, prepared: Prepared, out: DataFrame) -> DataFrame:
        """The user's column names back, vectors as Vectors, and the observers (statistics, progress)."""
        plan = prepared.plan
        show_fixes_first()  # an action failing on a systemic error shows its fix first (``_surface``)
        out = out.toDF(*prepared.original, *plan.names)
        if self._vector_output():
            out = out.withColumn(plan.outputs[0].name, _to_vector(out[plan.outputs[0].name]))
        return observe(self, plan, out)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(uid={self.uid!r}, deploymentName={self._get(self.deploymentName)!r})"


@dataclass(frozen=True)
class Prepared:
    """A transform's plan with the renamed input that ``mapInArrow`` reads and the schema it returns."""

    plan: Plan
    inputs: Inputs
    renamed: DataFrame
    original: tuple[str, ...]
    out_schema: StructType


def cost_fields(
    stage: AzureOpenAIStage, config: ClientConfig, hooks: tuple[HookFactory, ...]
) -> tuple[OutputField, ...]:
    """The ``costCol`` output when it is named: each row's cost at the stage's price (refused without one)."""
    if not stage.hasParam("costCol") or not stage._get(stage.getParam("costCol")):
        return ()
    price = next((hook.price for hook in hooks if isinstance(hook, UsageFactory)), None)
    if price is None:
        raise ConfigurationError(
            f"costCol: no price for deployment {config.deployment!r} in the price table; set prices={{'input': ...}}"
        )
    return (cost_field(price),)


def output_fields(plan: Plan, vector: bool = False) -> list[StructField]:
    """The Spark fields of a plan's output columns: the Transformer's new columns, or the struct a UDF or a
    SQL function returns. ``vector``: the value is a pyspark.ml Vector (a UDF's own; the Transformer returns
    ``array<float>`` from ``mapInArrow`` and converts it in ``_finish``)."""
    fields = [StructField(c.name, spark_type(c.field.arrow_type)) for c in plan.outputs]
    if vector:
        from pyspark.ml.linalg import VectorUDT

        fields[0] = StructField(fields[0].name, VectorUDT())
    return fields


def _to_vector(column: Column) -> Column:
    """``array<float>`` to a pyspark.ml Vector, null staying null (array_to_vector fails on null)."""
    from pyspark.ml.functions import array_to_vector

    return F.when(column.isNull(), F.lit(None)).otherwise(array_to_vector(column))
