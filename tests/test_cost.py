"""Cost per row in money and what ``retry_failed`` recovered (issue #27 point 11). Real emulator, local Spark."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pyspark.sql.types import StringType as String
from pyspark.sql.types import StructField, StructType

from spark_aoai import ChatCompletion, ConfigurationError, Embedding, retry_failed
from spark_aoai._core import constants as C
from spark_aoai._core.columns import encode_cost
from spark_aoai._core.contract import RowResults, Usage
from spark_aoai._core.pricing import PRICE_TABLE, Price
from spark_aoai._spark.rerun import RetryReport, RetryResult
from spark_aoai.emulator import Faults


def chat(endpoint: str, **params: object) -> ChatCompletion:
    settings: dict[str, object] = {"deploymentName": "gpt-4o", "apiKey": "k", "progress": False, **params}
    return ChatCompletion(promptCol="prompt", endpoint=endpoint, **settings)


def test_a_rows_cost_applies_the_cached_rate_and_is_null_without_usage():
    results = RowResults(3)
    results.succeed([0], "a", Usage(1_000_000, 100_000, 1_100_000, 200_000))
    results.succeed([1], "b", Usage(10, 0, 10))
    costs = encode_cost(Price(2.5, 1.25, 10.0))(results)
    assert costs.type == pa.float64()
    assert costs.to_pylist() == [pytest.approx(3.25), pytest.approx(10 * 2.5 / 1e6), None]


def test_cost_col_uses_the_batch_price_and_needs_a_price(emulator, tmp_path):
    schema = StructType([StructField("prompt", String())])
    batch = chat(emulator.endpoint, costCol="cost", mode="batch", batchDir=str(tmp_path))
    plan, _ = batch._plan(schema, None)
    cost = next(column for column in plan.outputs if column.name == "cost")
    assert cost.field.encode.price == PRICE_TABLE["gpt-4o"].scaled(C.BATCH_PRICE_FACTOR)  # the batch discount
    with pytest.raises(ConfigurationError, match=r"^costCol: no price for deployment 'my-llama'.*prices="):
        chat(emulator.endpoint, deploymentName="my-llama", costCol="cost")._plan(schema, None)


def test_cost_col_sums_to_the_statistics_cost(spark, emulator):
    rows = [(i, None if i % 9 == 0 else f"question {i % 13} about the weather") for i in range(40)]
    df = spark.createDataFrame(rows, "id int, prompt string").repartition(2)
    for stage in (
        chat(emulator.endpoint, costCol="cost", usageCol="usage", dedup=False),
        Embedding(deploymentName="text-embedding-3-small", inputCol="prompt", endpoint=emulator.endpoint,
                  apiKey="k", progress=False, costCol="cost"),
    ):  # fmt: skip
        out = stage.transform(df).collect()
        stats = stage.statistics()
        total = sum(r.cost for r in out if r.cost is not None)
        assert stats.estimated_cost is not None and stats.estimated_cost > 0
        assert total == pytest.approx(stats.estimated_cost, rel=1e-9)
        assert all(r.cost is None for r in out if r.prompt is None)  # nothing billed for an invalid row


def test_retry_failed_reports_what_it_resent_and_recovered(spark, emulator, tmp_path):
    emulator.configure(faults=Faults(error_503_rate=0.3, content_filter_marker="prompt 7", seed=3))
    stage = chat(emulator.endpoint, maxAttempts=1)
    df = spark.createDataFrame([(i, f"prompt {i}") for i in range(120)], "id int, prompt string").repartition(2)
    stage.transform(df).write.parquet(str(tmp_path / "out"))
    out = spark.read.parquet(str(tmp_path / "out"))
    before = {r.id: r.error.code for r in out.filter("error is not null").collect()}
    unavailable = sum(code == "ServiceUnavailable" for code in before.values())
    filtered = sum(code == "content_filter" for code in before.values())
    assert unavailable > 10 and filtered >= 1
    emulator.configure(faults=Faults(content_filter_marker="prompt 7"))
    emulator.reset_stats()
    result = retry_failed(stage, out, report=True)
    assert isinstance(result, RetryResult)
    rows, report = result
    sent = sum(emulator.stats()["requests"].values())
    assert report == RetryReport(
        resent={"ServiceUnavailable": unavailable},
        recovered={"ServiceUnavailable": unavailable},
        still_failing={},
        kept={"content_filter": filtered},
    )
    assert sent == unavailable
    assert rows.columns == out.columns and rows.count() == 120
    assert sum(emulator.stats()["requests"].values()) == sent  # checkpointed: counting the rows sent nothing again
    assert str(report).startswith(f"re-sent {unavailable} (ServiceUnavailable {unavailable}); recovered")
    assert not isinstance(retry_failed(stage, out), tuple)  # without report: a DataFrame, as before
