"""Output declarations: both flavours (Transformer and UDF) give the same columns for every option, and the
error codes the library produces are exactly the README's table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pyspark.ml.linalg import DenseVector, VectorUDT
from pyspark.sql import functions as F

from spark_aoai import ChatCompletion, Embedding, chat_udf, embedding_udf
from spark_aoai._core.contract import ErrorCode, RowError, Usage
from spark_aoai.emulator import chat_reply

README = Path(__file__).resolve().parents[1] / "README.md"

CHAT_OPTIONS = [
    {},
    {"usageCol": "usage"},
    {"finishReasonCol": "finish_reason"},
    {"usageCol": "usage", "finishReasonCol": "finish_reason", "outputCol": "answer", "errorCol": "problem"},
]
EMBEDDING_OPTIONS = [
    {},
    {"outputType": "vector"},
    {"usageCol": "usage"},
    {"outputType": "vector", "usageCol": "usage", "outputCol": "vec", "errorCol": "problem", "dimensions": 16},
]


def _rows(df, names):
    return sorted((tuple(_plain(r[n]) for n in ["id", *names]) for r in df.collect()), key=lambda t: t[0])


def _plain(value):
    if isinstance(value, DenseVector):
        return ("vector", tuple(round(float(x), 6) for x in value))
    if isinstance(value, list):
        return tuple(round(float(x), 6) for x in value)
    if hasattr(value, "asDict"):
        return tuple(sorted(value.asDict().items()))
    return value


@pytest.mark.parametrize("options", CHAT_OPTIONS)
def test_chat_udf_and_transformer_give_the_same_columns(spark, shared_emulator, options):
    df = spark.createDataFrame([(1, "one"), (2, None), (3, "three")], "id int, prompt string")
    common = {"deploymentName": "gpt-4o", "endpoint": shared_emulator.endpoint, **options}
    via_stage = ChatCompletion(promptCol="prompt", **common).transform(df)
    names = [c for c in via_stage.columns if c not in ("id", "prompt")]
    via_udf = df.select("id", chat_udf(**common)("prompt").alias("out")).select("id", "out.*")
    assert via_udf.columns == ["id", *names]
    assert [via_stage.schema[n].dataType for n in names] == [via_udf.schema[n].dataType for n in names]
    stage_rows, udf_rows = _rows(via_stage, names), _rows(via_udf, names)
    assert [r[:2] for r in stage_rows] == [r[:2] for r in udf_rows]
    assert stage_rows[0][1] == chat_reply([{"role": "user", "content": "one"}])
    if "usageCol" in options:  # usage and finish reason are per answer: equal for equal prompts
        usage_at = names.index("usage") + 1
        assert [r[usage_at] for r in stage_rows] == [r[usage_at] for r in udf_rows]
        assert dict(stage_rows[0][usage_at])["prompt_tokens"] > 0
    expected = {"response": "response", "error": "error"}
    if options.get("outputCol"):
        expected = {"response": "answer", "error": "problem"}
    assert names[:2] == [expected["response"], expected["error"]]


@pytest.mark.parametrize("options", EMBEDDING_OPTIONS)
def test_embedding_udf_and_transformer_give_the_same_columns(spark, shared_emulator, options):
    df = spark.createDataFrame([(1, "alpha"), (2, ""), (3, "gamma"), (4, "alpha")], "id int, text string")
    common = {"deploymentName": "text-embedding-3-small", "endpoint": shared_emulator.endpoint, **options}
    via_stage = Embedding(inputCol="text", **common).transform(df)
    names = [c for c in via_stage.columns if c not in ("id", "text")]
    via_udf = df.select("id", embedding_udf(**common)("text").alias("out")).select("id", "out.*")
    assert via_udf.columns == ["id", *names]
    types = [via_stage.schema[n].dataType for n in names]
    assert types == [via_udf.schema[n].dataType for n in names]
    assert isinstance(types[0], VectorUDT) == (options.get("outputType") == "vector")
    stage_rows, udf_rows = _rows(via_stage, names), _rows(via_udf, names)
    assert stage_rows == udf_rows
    assert stage_rows[1][1] is None and dict(stage_rows[1][2])["code"] == "invalid_input"  # a failed row's vector
    if options.get("dimensions"):
        assert len(stage_rows[0][1][1] if options.get("outputType") == "vector" else stage_rows[0][1]) == 16


def _readme_error_codes() -> tuple[set[str], str]:
    text = README.read_text()
    section = text[text.index("### The error struct") :]
    table = section[section.index("| code |") :]
    table = table[: table.index("\n\n")]
    codes = set()
    service_row = ""
    for line in table.splitlines()[2:]:
        first = line.split("|")[1]
        if "Azure's" in first:
            service_row = line
            continue
        codes.update(re.findall(r"`([a-z_]+)`", first))
    return codes, service_row


def test_the_readme_error_table_lists_every_library_code_and_nothing_else():
    codes, service_row = _readme_error_codes()
    assert codes == {code.value for code in ErrorCode}
    assert service_row, "the table keeps one row for the service's own codes"


def test_row_error_and_usage_are_what_the_arrow_types_declare():
    from spark_aoai._core.contract import ROW_ERROR_ARROW_TYPE, USAGE_ARROW_TYPE

    assert list(RowError(400, "x", "m").as_dict()) == ROW_ERROR_ARROW_TYPE.names
    assert list(Usage().as_dict()) == USAGE_ARROW_TYPE.names
    assert RowError(None, ErrorCode.TIMEOUT, "m").code == "timeout"


@pytest.mark.parametrize(
    ("total", "weights", "parts"),
    [(10, [1, 1, 1], [4, 3, 3]), (7, [0, 0], [4, 3]), (5, [10, 0, 0], [5, 0, 0]), (0, [1, 2], [0, 0])],
)
def test_usage_splits_into_whole_tokens_that_add_up(total, weights, parts):
    shares = Usage(prompt_tokens=total, total_tokens=total).split(weights)
    assert [s.prompt_tokens for s in shares] == parts and sum(parts) == total
    assert all(s.completion_tokens is None for s in shares)


def test_the_udfs_are_evaluated_once_per_row_under_a_filter(spark, emulator):
    df = spark.createDataFrame([(i, f"filtered {i}") for i in range(20)], "id int, prompt string")
    ask = chat_udf(deploymentName="gpt-4o", endpoint=emulator.endpoint)
    out = df.withColumn("o", ask("prompt")).where("o.error is null").select("id", F.col("o.response"))
    assert out.count() == 20
    assert emulator.stats()["requests"] == {"chat 200": 20}
    rows = df.withColumn("o", ask("prompt")).where(F.col("o.response").isNotNull()).collect()
    assert len(rows) == 20 and emulator.stats()["requests"] == {"chat 200": 40}


def test_stages_with_default_names_chain_in_a_pipeline(spark, shared_emulator):
    from pyspark.ml import Pipeline

    df = spark.createDataFrame([(1, "chain me"), (2, None)], "id int, prompt string")
    endpoint = shared_emulator.endpoint
    stages = [
        ChatCompletion(deploymentName="gpt-4o", promptCol="prompt", endpoint=endpoint),
        Embedding(deploymentName="text-embedding-3-small", inputCol="response", endpoint=endpoint, dimensions=8),
    ]
    out = Pipeline(stages=stages).fit(df).transform(df)
    assert out.columns == ["id", "prompt", "response", "error", "embedding", "embedding_error"]
    rows = {r.id: r for r in out.collect()}
    assert rows[1].error is None and rows[1].embedding_error is None and len(rows[1].embedding) == 8
    assert rows[2].error.code == "invalid_input" and rows[2].embedding_error.code == "invalid_input"
    named = Embedding(deploymentName="e", inputCol="prompt", endpoint=endpoint, errorCol="error")
    with pytest.raises(Exception, match="errorCol: output column 'error' already exists"):
        named.transform(out.select("id", "prompt", "error"))  # a name the user set is kept, and must be new


def test_a_stage_re_run_over_its_own_failed_rows_replaces_its_columns(spark, emulator):
    from spark_aoai.emulator import Faults

    emulator.configure(faults=Faults(content_filter_marker="<<flaky>>"))
    df = spark.createDataFrame([(1, "fine"), (2, "<<flaky>> once")], "id int, prompt string")
    stage = ChatCompletion(deploymentName="gpt-4o", promptCol="prompt", endpoint=emulator.endpoint)
    first = stage.transform(df).cache()
    failed = first.where("error is not null")
    assert failed.count() == 1
    emulator.configure(faults=Faults())
    again = stage.transform(failed)
    assert again.columns == first.columns
    row = again.first()
    assert row.error is None and row.response == chat_reply([{"role": "user", "content": "<<flaky>> once"}])


def test_a_udf_over_a_column_of_numbers_fails_naming_its_type(spark, shared_emulator):
    df = spark.createDataFrame([(1, 2.5)], "id int, price double")
    ask = chat_udf(deploymentName="gpt-4o", endpoint=shared_emulator.endpoint)
    with pytest.raises(Exception, match="ChatCompletion UDF: its argument column is float64, not a string column"):
        df.select(ask("price")).collect()
