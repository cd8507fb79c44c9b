"""spark_aoai: Azure OpenAI chat completions and embeddings over Spark DataFrames.

>>> from spark_aoai import ChatCompletion, Embedding
>>> chat = ChatCompletion(deploymentName="gpt-4o", promptCol="prompt")  # doctest: +SKIP
>>> chat.transform(df)  # adds "response" and "error"  # doctest: +SKIP

The Spark-facing names (stages, UDFs, ``ai``) are imported lazily, on first use: the engine, the settings and
the emulator (``spark_aoai.emulator``) work where pyspark is not installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spark_aoai.exceptions import (
    ConfigurationError,
    RequestFailedError,
    SparkAOAIError,
    SystemicError,
    failure_of,
    systemic_of,
)

__version__ = "0.1.0"

# name -> the module that defines it; each needs pyspark.
_SPARK_NAMES = {
    "ChatCompletion": "spark_aoai.transformers",
    "Embedding": "spark_aoai.transformers",
    "chat_udf": "spark_aoai.functions",
    "embedding_udf": "spark_aoai.functions",
    "ai": "",  # the module spark_aoai.ai itself
    "retry_failed": "spark_aoai._spark.rerun",
    "BatchJob": "spark_aoai._spark.batch_job",
}
# name -> the module that defines it; these work without pyspark.
_PLAIN_NAMES = {
    "ErrorCode": "spark_aoai._core.contract",
    "JobStatistics": "spark_aoai._features.stats",
    "Price": "spark_aoai._core.pricing",
    "PRICE_TABLE": "spark_aoai._core.pricing",
}

if TYPE_CHECKING:
    from spark_aoai import ai
    from spark_aoai._core.contract import ErrorCode
    from spark_aoai._core.pricing import PRICE_TABLE, Price
    from spark_aoai._features.stats import JobStatistics
    from spark_aoai._spark.batch_job import BatchJob
    from spark_aoai._spark.rerun import retry_failed
    from spark_aoai.functions import chat_udf, embedding_udf
    from spark_aoai.transformers import ChatCompletion, Embedding

__all__ = [
    "PRICE_TABLE",
    "BatchJob",
    "ChatCompletion",
    "ConfigurationError",
    "Embedding",
    "ErrorCode",
    "JobStatistics",
    "Price",
    "RequestFailedError",
    "SparkAOAIError",
    "SystemicError",
    "__version__",
    "ai",
    "chat_udf",
    "embedding_udf",
    "failure_of",
    "retry_failed",
    "systemic_of",
]


def __getattr__(name: str) -> Any:
    import importlib

    if name in _PLAIN_NAMES:
        value = getattr(importlib.import_module(_PLAIN_NAMES[name]), name)
        globals()[name] = value
        return value
    module_name = _SPARK_NAMES.get(name)
    if module_name is None:
        raise AttributeError(f"module 'spark_aoai' has no attribute {name!r}")
    try:
        import pyspark  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"spark_aoai.{name} needs pyspark: install spark_aoai[spark] (pip install 'spark_aoai[spark]'), "
            "or use a Spark runtime (Fabric, Databricks, Synapse) that ships it"
        ) from exc
    value = (
        importlib.import_module("spark_aoai.ai")
        if name == "ai"
        else getattr(importlib.import_module(module_name), name)
    )
    globals()[name] = value
    return value
