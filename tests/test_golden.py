"""Golden values: bytes that outlive a process, pinned to what they were when first written.

These are NOT regression snapshots to refresh when they fail. A response-cache key names an answer stored in a
user's ``cacheDir``; a batch line's ``custom_id`` joins an answer written by Azure back onto its row; a
manifest's fingerprint finds a job submitted by an earlier run in ``batchDir``. Each outlives the process that
wrote it, so a change of any of them silently orphans users' caches and running batch jobs (paid for, and
sent again). They must never change; a refactoring that changes one is a bug in the refactoring. (Computed at
commit a1709ae, before the one-path refactoring of issue #22.)

The saved pipeline under ``tests/data/saved_pipeline_v1`` pins the other such bytes: stages' class paths and
Param names, which ``PipelineModel.load`` reads.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pytest

from spark_aoai import ai
from spark_aoai._batch.lines import LineIds, request_partition
from spark_aoai._batch.results import FileLimits
from spark_aoai._core.contract import RowResults
from spark_aoai._engine.plan import Inputs
from spark_aoai._features.cache import cache_key
from spark_aoai._wire import chat, embeddings, responses
from spark_aoai.transformers import ChatCompletion, Embedding

ENDPOINT = "https://golden.openai.azure.com"
ITEMS = ["Hello", "Bonjour, ça va ?", "Hello"]
SAVED_PIPELINE = os.path.join(os.path.dirname(__file__), "data", "saved_pipeline_v1")

CACHE_KEYS = [  # (route, deployment, request body) -> the key its answer is stored under
    (chat.ROUTE, "gpt-4o", {"messages": [{"role": "user", "content": "Hello"}], "temperature": 0},
     "5477fab9fc9af73293fbf849dd58263fa30bf1376a2ef92df361f2361a5fddc3"),
    (embeddings.ROUTE, "text-embedding-3-small", {"input": ["a", "b"], "encoding_format": "base64"},
     "0e94b5946e965c0be161a3fb83f5a7d059e87de4b9075ca047267519a497d182"),
    (responses.ROUTE, "gpt-4o",
     {"input": [{"role": "user", "content": "Bonjour, ça va ?"}], "instructions": "Be brief."},
     "34b2a95a16b697ab5a993ea97f15c16673faccf3d12a8101957e117eb40afd47"),
]  # fmt: skip


def golden_stages() -> dict[str, object]:
    common = {"endpoint": ENDPOINT, "apiKey": "k", "mode": "batch", "batchDir": "/tmp/spark_aoai-golden-batches"}
    return {
        "chat": ChatCompletion(
            deploymentName="gpt-4o", promptCol="p", temperature=0.0, systemPrompt="Be brief.", **common
        ),
        "embedding": Embedding(deploymentName="text-embedding-3-small", inputCol="p", **common),
        "classify": ai.classify("p", labels=["bug", "feature"], deploymentName="gpt-4o", **common),
        "chat_no_dedup": ChatCompletion(deploymentName="gpt-4o", promptCol="p", dedup=False, **common),
    }


CUSTOM_IDS = {  # ITEMS through each stage above -> its lines' custom_ids, in planning order
    "chat": ["r-77fe0aac2c151abb9205b349f36b14aa5ecd8de4", "r-926887da7b9b0345e00d4b26bffba4b528b80632",
             "r-77fe0aac2c151abb9205b349f36b14aa5ecd8de4"],
    "embedding": ["r-be1bc7794a3dd08e36638d181333523b7ad37720", "r-f4aa3d06955a0077746d9eb26e9e1f5d27a05374"],
    "classify": ["r-26805ae5ff58ff572ada1eb15754249c91a93d52", "r-215d7ac9720779b360ff9f742bce1138596cfa6b",
                 "r-26805ae5ff58ff572ada1eb15754249c91a93d52"],
    "chat_no_dedup": ["r-d7c7a8ac83fccd785030c43af21507bcde03e47c-0", "r-10a687b398a81ca45f7ce9e415dd40ff09739aa7-0",
                      "r-d7c7a8ac83fccd785030c43af21507bcde03e47c-1"],
}  # fmt: skip

PARTITION_RECORDS = {  # ITEMS as one partition -> its request-pass record (key, first id, digest, lines, bytes)
    "chat": {"key": "902f28bc1e938b8681383c716e2937d0b45fd781ffde8a59cb79d527c03b5aa8",
             "first": "r-77fe0aac2c151abb9205b349f36b14aa5ecd8de4",
             "digest": "82649d32d3c538bd0418b1baa6d1ce09e65321fa",
             "lines": 2, "bytes": 476, "file_id": None, "rows": 3},
    "embedding": {"key": "5cf9c79c30360bb1ffe95015de45075f0f676ba1218ba48b99a24ad5ff335048",
                  "first": "r-be1bc7794a3dd08e36638d181333523b7ad37720",
                  "digest": "70e1cbf929d5a193e134b8e29504c3d41d4741b4", "lines": 2, "bytes": 376, "file_id": None,
                  "rows": 3},
}  # fmt: skip

FINGERPRINTS = {  # ITEMS as a one-partition DataFrame -> the batch job's manifest fingerprint (its file name)
    "chat": "15963c6bfc19c355815104c9c20807c3",
    "embedding": "977dcf503c494f479af7eda3d9f576f1",
    "classify": "ea07c6dfdce29c702a65211d230af0b9",
    "chat_no_dedup": "8675e3556af1d690eed38a28ce16aabb",
}


def plan_of(stage):
    return stage._plan(None, None)[0]


@pytest.mark.parametrize(("route", "deployment", "payload", "key"), CACHE_KEYS)
def test_cache_keys_never_change(route, deployment, payload, key):
    assert cache_key(route, deployment, payload) == key


@pytest.mark.parametrize("name", sorted(CUSTOM_IDS))
def test_batch_custom_ids_never_change(name):
    plan = plan_of(golden_stages()[name])
    lines = LineIds(plan)
    units = plan.operation.for_task().plan(list(ITEMS), RowResults(len(ITEMS)))
    assert [lines.line(unit)[0] for unit in units] == CUSTOM_IDS[name]


@pytest.mark.parametrize("name", sorted(PARTITION_RECORDS))
def test_batch_partition_records_never_change(name):
    plan = plan_of(golden_stages()[name])
    batch = pa.RecordBatch.from_pydict({"p": list(ITEMS)})
    function = request_partition(plan, Inputs(("p",)), FileLimits(100, 10_000), None)
    (record,) = pa.Table.from_batches(list(function(iter([batch])))).to_pylist()
    assert record == PARTITION_RECORDS[name]


@pytest.mark.parametrize("name", sorted(FINGERPRINTS))
def test_batch_manifest_fingerprints_never_change(spark, tmp_path, name):
    from spark_aoai._spark.batch_job import BatchJob

    stage = golden_stages()[name].setParams(batchDir=str(tmp_path))
    df = spark.createDataFrame([(t,) for t in ITEMS], "p string").coalesce(1)
    job = BatchJob(stage, df, stage._prepare, stage._finish)
    assert job._fingerprint(job._request_pass(None)) == FINGERPRINTS[name]


def test_a_pipeline_saved_before_the_refactoring_loads_and_runs(spark, emulator):
    """``tests/data/saved_pipeline_v1``: a PipelineModel of a ChatCompletion, an Embedding and an ``ai.classify``
    saved at commit a1709ae (endpoint ``http://127.0.0.1:9``, no credential). Its class paths and Params must
    keep loading: users' saved pipelines hold the same bytes."""
    import json

    from pyspark.ml import PipelineModel

    from spark_aoai._planning.tasks import classify_output
    from spark_aoai.emulator import chat_reply, embed_text, value_for_schema

    model = PipelineModel.load(SAVED_PIPELINE)
    classify_stage = model.stages[2]
    assert [type(s) for s in model.stages] == [ChatCompletion, Embedding, ai.Classify]
    assert [type(s).__module__ for s in model.stages] == ["spark_aoai.transformers"] * 2 + ["spark_aoai.ai"]
    assert classify_stage.getOrDefault(classify_stage.labels) == ["bug", "feature", "question"]
    for stage in model.stages:
        assert stage._secrets == {}
        stage.setParams(endpoint=emulator.endpoint).setCredentials(apiKey="sk-test")
    texts = ["The app crashes when I upload a photo", "Please add dark mode"]
    df = spark.createDataFrame(list(enumerate(texts)), "id int, text string")
    out = model.transform(df)
    assert out.columns == ["id", "text", "answer", "answer_error", "vector", "vector_error", "label", "label_error"]
    labels = classify_output({"labels": ["bug", "feature", "question"]})
    for row in out.orderBy("id").collect():
        assert row.answer_error is None and row.vector_error is None and row.label_error is None
        messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": row.text}]
        assert row.answer == chat_reply(messages)
        assert np.allclose(row.vector, embed_text(row.text, 256))
        label = value_for_schema(labels.shape.json_schema(), "", prompt=row.text)
        assert row.label == labels.parse(json.dumps(label))
