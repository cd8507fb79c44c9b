"""The engine's plug-ins, assembled in one place and in one order (never registered on import).

A plug-in reads a stage's Params on the driver and returns a picklable ``HookFactory`` (or None when it is
off) that the plan ships to the executors; an observer watches a transform's output on the driver. In order:

1. the response cache (``cacheDir``): its lookup comes first, so a stored answer is neither sent nor charged;
2. usage (``_usage``): the statistics' task records, the spend cap's gate, and on the driver ``statistics()``
   and the progress line.

To add one, write its factory (executor side, free of pyspark) and its builder, and list it here.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame

from spark_aoai._client.config import ClientConfig
from spark_aoai._core.contract import Operation
from spark_aoai._engine.hooks import HookFactory
from spark_aoai._engine.plan import Plan
from spark_aoai._features.cache import CacheFactory, check_directory
from spark_aoai._spark.usage import build_usage_hooks, observe_output


def build_cache(stage: Any, config: ClientConfig, operation: Operation) -> CacheFactory | None:
    """The cache of ``cacheDir`` (None when unset); a directory that cannot be written is refused here."""
    directory = stage._get(stage.cacheDir)
    if not directory:
        return None
    check_directory(directory)
    return CacheFactory(str(directory), operation.route, config.deployment)


def hook_factories(stage: Any, config: ClientConfig, operation: Operation) -> tuple[HookFactory, ...]:
    """The plan's hooks for ``stage`` (an ``AzureOpenAIStage``), in the engine's order."""
    built = (build_cache(stage, config, operation), build_usage_hooks(stage, config, operation))
    return tuple(factory for factory in built if factory is not None)


def observe(stage: Any, plan: Plan, out: DataFrame) -> DataFrame:
    """The output of a transform as handed back, with the driver-side observers (statistics, progress)."""
    return observe_output(stage, plan, out)
