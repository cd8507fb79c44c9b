"""Retry the failures only: re-send the rows of a finished output whose error is worth another try.

>>> fixed = retry_failed(chat, out)  # same schema, same rows; only retryable error rows were sent  # doctest: +SKIP
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from spark_aoai._contract import retryable_codes
from spark_aoai._retry import RETRYABLE_STATUS
from spark_aoai._stage import AzureOpenAIStage
from spark_aoai.exceptions import ConfigurationError

# What a later try may cure: throttling, quota and budget stops, server errors, the network, garbled answers,
# and batches that did not finish (``_contract.RETRY_BY_CODE``).
RETRYABLE_CODES = tuple(sorted(retryable_codes(later=True)))


def retryable(error: Column) -> Column:
    """True for an error struct worth another try: a status in ``_retry.RETRYABLE_STATUS`` (408/409/429/5xx, as
    online) or one of ``RETRYABLE_CODES``."""
    by_status = error["status"].isin(*sorted(RETRYABLE_STATUS))
    return error.isNotNull() & F.coalesce(by_status | error["code"].isin(*RETRYABLE_CODES), F.lit(False))


def retry_failed(stage: AzureOpenAIStage, output: DataFrame) -> DataFrame:
    """Run ``stage`` again over the rows of its ``output`` whose error is retryable; the others are kept as
    they are. Returns the merged result: the same columns in the same order, the same number of rows.

    Give it an output that is saved (read back from a table or files) or cached: an uncached output would
    be computed again, sending its rows again (unless the stage has a ``cacheDir``).

    >>> out = spark.read.parquet("answers")  # doctest: +SKIP
    >>> out = retry_failed(chat, out)  # doctest: +SKIP
    """
    plan, _ = stage._plan(output.schema, output.sparkSession)
    value_name, error_name = plan.names[0], plan.names[1]
    if not stage._is_own_output(output.schema, value_name, error_name):
        raise ConfigurationError(
            f"retry_failed needs this stage's output: columns {value_name!r} and {error_name!r} (an error struct) "
            f"are not both in {output.columns}"
        )
    again = retryable(F.col(f"`{error_name}`"))
    redone = stage.transform(output.filter(again))
    return output.filter(~again).unionByName(redone).select(*[F.col(f"`{c}`") for c in output.columns])
