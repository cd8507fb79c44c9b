"""Spark-side wiring of the response cache: the builder that turns a stage's ``cacheDir`` into the plan's
``CacheFactory`` (checked on the driver), registered in ``_stage.HOOK_BUILDERS``. The store itself is in
``_cache``, which executors import without pyspark.
"""

from __future__ import annotations

from spark_aoai._cache import CacheFactory, check_directory
from spark_aoai._config import ClientConfig
from spark_aoai._contract import Operation
from spark_aoai._stage import HOOK_BUILDERS, AzureOpenAIStage


def build_cache(stage: AzureOpenAIStage, config: ClientConfig, operation: Operation) -> CacheFactory | None:
    """The cache of ``cacheDir`` (None when unset); a directory that cannot be written is refused here."""
    directory = stage.getOrDefault(stage.cacheDir)
    if not directory:
        return None
    check_directory(directory)
    return CacheFactory(str(directory), operation.route, config.deployment)


if build_cache not in HOOK_BUILDERS:
    HOOK_BUILDERS.append(build_cache)
