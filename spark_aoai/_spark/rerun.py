"""Retry the failures only: re-send the rows of a finished output whose error is worth another try.

>>> fixed = retry_failed(chat, out)  # same schema, same rows; only retryable error rows were sent  # doctest: +SKIP
>>> fixed, report = retry_failed(chat, out, report=True)  # sent now; what was re-sent, recovered  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from spark_aoai._client.retry import RETRYABLE_STATUS
from spark_aoai._core.contract import retryable_codes
from spark_aoai._spark.stage import AzureOpenAIStage
from spark_aoai._spark.surface import raised_clean
from spark_aoai.exceptions import ConfigurationError

# What a later try may cure: throttling, quota and budget stops, server errors, the network, garbled answers,
# and batches that did not finish (``_contract.RETRY_BY_CODE``).
RETRYABLE_CODES = tuple(sorted(retryable_codes(later=True)))
_OLD_CODE = "_spark_aoai_retried_code"


@dataclass(frozen=True)
class RetryReport:
    """What ``retry_failed(..., report=True)`` did, by error code: the rows it re-sent (by their old code),
    those that now have a value (by their old code), those still failing (by their new code), and the error
    rows it kept as they were (not retryable: the input, a content filter, ...)."""

    resent: dict[str, int] = field(default_factory=dict)
    recovered: dict[str, int] = field(default_factory=dict)
    still_failing: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        def line(counts: dict[str, int]) -> str:
            inside = ", ".join(f"{code} {count:,}" for code, count in sorted(counts.items()))
            return f"{sum(counts.values()):,}" + (f" ({inside})" if inside else "")

        return (
            f"re-sent {line(self.resent)}; recovered {line(self.recovered)}; still failing "
            f"{line(self.still_failing)}; kept as they were (not retryable) {line(self.kept)}"
        )


class RetryResult(NamedTuple):
    """``retry_failed(..., report=True)``: the merged rows and the report."""

    rows: DataFrame
    report: RetryReport


def retryable(error: Column) -> Column:
    """True for an error struct worth another try: a status in ``_retry.RETRYABLE_STATUS`` (408/409/429/5xx, as
    online) or one of ``RETRYABLE_CODES``."""
    by_status = error["status"].isin(*sorted(RETRYABLE_STATUS))
    return error.isNotNull() & F.coalesce(by_status | error["code"].isin(*RETRYABLE_CODES), F.lit(False))


def retry_failed(stage: AzureOpenAIStage, output: DataFrame, *, report: bool = False) -> Any:
    """Run ``stage`` again over the rows of its ``output`` whose error is retryable; the others are kept as
    they are. Returns the merged result: the same columns in the same order, the same number of rows.

    Give it an output that is saved (read back from a table or files) or cached: an uncached output would
    be computed again, sending its rows again (unless the stage has a ``cacheDir``).

    By default the result is a DataFrame, sent when an action runs over it (as before). ``report=True``
    sends the retryable rows now (``localCheckpoint``: once, whatever runs over the result later) and returns
    ``RetryResult(rows, report)``, the ``RetryReport`` saying what was re-sent and recovered, by error code.

    >>> out = spark.read.parquet("answers")  # doctest: +SKIP
    >>> out = retry_failed(chat, out)  # doctest: +SKIP
    >>> out, report = retry_failed(chat, out, report=True); print(report)  # doctest: +SKIP
    re-sent 12 (429 8, timeout 4); recovered 11 (429 8, timeout 3); still failing 1 (timeout 1); kept ...
    """
    plan, _ = stage._plan(output.schema, output.sparkSession)
    value_name, error_name = plan.names[0], plan.names[1]
    if not stage._is_own_output(output.schema, value_name, error_name):
        raise ConfigurationError(
            f"retry_failed needs this stage's output: columns {value_name!r} and {error_name!r} (an error struct) "
            f"are not both in {output.columns}"
        )
    error = F.col(f"`{error_name}`")
    again = retryable(error)
    columns = [F.col(f"`{c}`") for c in output.columns]
    if not report:
        redone = stage.transform(output.filter(again))
        return output.filter(~again).unionByName(redone).select(*columns)
    with raised_clean():  # sent here: a systemic failure is raised as the SystemicError, its fix first
        redone = stage.transform(output.filter(again).withColumn(_OLD_CODE, error["code"])).localCheckpoint()
        new_error = F.col(f"`{error_name}`")
        counts = redone.groupBy(F.col(_OLD_CODE).alias("old"), new_error["code"].alias("new")).count().collect()
        kept = output.filter(~again & error.isNotNull()).groupBy(error["code"].alias("code")).count().collect()
    result = RetryReport(
        resent=_by(counts, "old"),
        recovered=_by([row for row in counts if row["new"] is None], "old"),
        still_failing=_by([row for row in counts if row["new"] is not None], "new"),
        kept={str(row["code"]): int(row["count"]) for row in kept},
    )
    rows = output.filter(~again).unionByName(redone.drop(_OLD_CODE)).select(*columns)
    return RetryResult(rows, result)


def _by(rows: list[Any], key: str) -> dict[str, int]:
    """Counts of ``rows`` (``groupBy(...).count()`` rows) added up by the code in ``key``."""
    total: dict[str, int] = {}
    for row in rows:
        total[str(row[key])] = total.get(str(row[key]), 0) + int(row["count"])
    return total
