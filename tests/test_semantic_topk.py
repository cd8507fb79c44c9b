"""ai.top_k returns the ground-truth top k (the emulator ranks by criterion words) with a bounded, reported
number of requests: one list-wise ranking, or a tournament for a larger pool. Real emulator, local Spark."""

from __future__ import annotations

import pytest

from spark_aoai import ai
from spark_aoai.emulator._semantic import key_words
from spark_aoai.exceptions import ConfigurationError
from tests.semantic_data import CRITERION, ranked_texts


def kwargs(endpoint, **extra):
    return {"deploymentName": "gpt-4o", "endpoint": endpoint, "apiKey": "sk-test",
            "embeddingDeploymentName": "text-embedding-3-small", "dimensions": 256, **extra}  # fmt: skip


def truth(texts, k):
    wanted = key_words(CRITERION)
    return set(sorted(range(len(texts)), key=lambda i: (-len(wanted & key_words(texts[i])), i))[:k])


@pytest.mark.parametrize(("candidates", "requests", "rounds"), [(None, 1, 1), (120, 4, 2)])
def test_top_k_is_the_ground_truth(spark, shared_emulator, candidates, requests, rounds):
    texts = ranked_texts(2000, best=5)
    df = spark.createDataFrame(list(enumerate(texts)), "id int, text string").repartition(2)
    out = ai.top_k(df, "text", 5, CRITERION, candidates=candidates, **kwargs(shared_emulator.endpoint))
    rows = out.collect()
    assert {r.id for r in rows} == truth(texts, 5) and [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert out.columns == ["id", "text", "rank"]
    stats = out.statistics()
    assert (stats["rows"], stats["requests"], stats["rounds"], stats["failed_requests"]) == (2000, requests, rounds, 0)
    assert stats["candidates"] == (candidates or 20)


def test_bad_settings_are_refused():
    with pytest.raises(ConfigurationError, match="k must be"):
        ai.SemanticTopK(CRITERION, 0, ai._semantic_stage, embeddingDeploymentName="e", deploymentName="gpt-4o")
    with pytest.raises(ConfigurationError, match="embeddingDeploymentName"):
        ai.SemanticTopK(CRITERION, 3, ai._semantic_stage, deploymentName="gpt-4o")
