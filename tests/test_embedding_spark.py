"""Embedding and embedding_udf on local Spark against the emulator."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.ml import Pipeline
from pyspark.ml.linalg import DenseVector
from pyspark.sql import functions as F

from spark_aoai import ConfigurationError, Embedding, embedding_udf
from spark_aoai.emulator import Faults, embed_text


def embedding(url: str, **kwargs) -> Embedding:
    defaults = {"deploymentName": "text-embedding-3-small", "inputCol": "text", "endpoint": url, "apiKey": "k"}
    return Embedding(**{**defaults, **kwargs})


def test_vectors_are_each_rows_own_and_requests_carry_many_inputs(spark, emulator):
    emulator.configure(faults=Faults(shuffle_embeddings=True, seed=1))
    texts = [f"document about topic {i % 300}" for i in range(1000)]
    df = spark.createDataFrame(list(enumerate(texts)), "id int, text string").repartition(2)
    out = embedding(emulator.endpoint, batchSize=128).transform(df).cache()
    rows = out.collect()
    assert sorted(r.id for r in rows) == list(range(1000))
    for r in rows:
        assert r.error is None
        np.testing.assert_array_equal(np.array(r.embedding, dtype=np.float32), embed_text(r.text, 1536))
    stats = emulator.stats()
    per_request = stats["inputs_per_request"]
    assert max(per_request) == 128 and len(per_request) < 20
    # each distinct text at most once per partition (two partitions may share one)
    assert max(stats["inputs"].values()) <= 2
    assert sum(stats["inputs"].values()) < 1000


def test_fault_free_run_embeds_each_text_once(spark, emulator):
    df = spark.createDataFrame([(i, f"unique text {i}") for i in range(500)], "id int, text string").coalesce(1)
    out = embedding(emulator.endpoint).transform(df)
    assert out.where("error is null").count() == 500
    assert set(emulator.stats()["inputs"].values()) == {1}


def test_bad_inputs_are_isolated(spark, emulator):
    emulator.configure(faults=Faults(content_filter_marker="<<bad>>", max_input_tokens=1000))
    rows = [(i, f"good {i}") for i in range(60)]
    rows[5] = (5, None)
    rows[6] = (6, "")
    rows[7] = (7, "x <<bad>>")
    rows[8] = (8, "long " * 5000)
    df = spark.createDataFrame(rows, "id int, text string").coalesce(1)
    got = {r.id: r for r in embedding(emulator.endpoint).transform(df).collect()}
    assert len(got) == 60
    assert [got[i].error.code for i in (5, 6, 7, 8)] == [
        "invalid_input",
        "invalid_input",
        "content_filter",
        "context_length_exceeded",
    ]
    assert all(got[i].embedding is None for i in (5, 6, 7, 8))
    assert all(got[i].error is None and len(got[i].embedding) == 1536 for i in range(60) if i not in (5, 6, 7, 8))
    sent = emulator.stats()["inputs"]
    assert None not in sent and "" not in sent


def test_under_faults_every_row_gets_its_vector(spark, emulator):
    emulator.configure(
        faults=Faults(
            error_500_rate=0.2, error_503_rate=0.1, drop_rate=0.1, malformed_rate=0.1, shuffle_embeddings=True, seed=9
        )
    )
    df = spark.createDataFrame([(i, f"t {i}") for i in range(400)], "id int, text string").repartition(2)
    rows = embedding(emulator.endpoint, batchSize=50, maxAttempts=20).transform(df).collect()
    assert len(rows) == 400
    for r in rows:
        assert r.error is None, r.error
        np.testing.assert_array_equal(np.array(r.embedding, dtype=np.float32), embed_text(r.text, 1536))


def test_dimensions_and_vector_output_in_a_pipeline(spark, emulator):
    from pyspark.ml.feature import Normalizer

    df = spark.createDataFrame([(1, "alpha"), (2, "beta")], "id int, text string")
    stage = embedding(emulator.endpoint, dimensions=64, outputType="vector", deploymentName="text-embedding-3-large")
    model = Pipeline(stages=[stage, Normalizer(inputCol="embedding", outputCol="unit")]).fit(df)
    rows = model.transform(df).collect()
    assert all(isinstance(r.embedding, DenseVector) and len(r.embedding) == 64 for r in rows)
    assert all(abs(r.unit.norm(2) - 1.0) < 1e-5 for r in rows)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"inputCol": "missing"}, "not found"),
        ({"inputCol": "id"}, "not string"),
        ({"batchSize": 5000}, "batchSize must be between 1 and 2048"),
        ({"outputType": "matrix"}, "outputType"),
    ],
)
def test_bad_configuration(spark, emulator, kwargs, message):
    df = spark.createDataFrame([(1, "a")], "id int, text string")
    with pytest.raises(ConfigurationError, match=message):
        embedding(emulator.endpoint, **kwargs).transform(df)


def test_embedding_udf(spark, emulator):
    embed = embedding_udf(deploymentName="text-embedding-3-small", endpoint=emulator.endpoint, apiKey="k")
    df = spark.createDataFrame([(1, "hello world"), (2, None)], "id int, text string")
    rows = {r.id: r for r in df.select("id", embed(F.col("text")).alias("e")).select("id", "e.*").collect()}
    np.testing.assert_array_equal(np.array(rows[1].embedding, dtype=np.float32), embed_text("hello world", 1536))
    assert rows[2].embedding is None and rows[2].error.code == "invalid_input"
