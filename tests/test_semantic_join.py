"""ai.join against full pairwise ground truth (the emulator's pair rule): recall and the pairs checked, on the
embeddings plan (2,000 x 2,000) and the classification plan. Real emulator, local Spark."""

from __future__ import annotations

import pytest

from spark_aoai import ai
from spark_aoai.exceptions import ConfigurationError
from tests.semantic_data import join_sides, join_truth

CONDITION = "{left.name} and {right.title} name the same thing"


def kwargs(endpoint, **extra):
    return {"deploymentName": "gpt-4o", "endpoint": endpoint, "apiKey": "sk-test", **extra}


def test_embeddings_plan_finds_the_matches_of_2000_by_2000(spark, shared_emulator):
    left, right = join_sides(2000)
    truth = join_truth(left, right)
    assert len(truth) >= 1300
    lefts = spark.createDataFrame(list(enumerate(left)), "id int, name string").repartition(2)
    rights = spark.createDataFrame(list(enumerate(right)), "id int, title string").repartition(2)
    shared_emulator.reset_stats()
    out = ai.join(
        lefts, rights, CONDITION, embeddingDeploymentName="text-embedding-3-small", dimensions=256,
        rowsPerRequest=25, **kwargs(shared_emulator.endpoint),
    )  # fmt: skip
    assert out.columns == ["left_id", "name", "right_id", "title", "error"]
    rows = out.collect()
    assert all(r.error is None for r in rows)
    found = {(r.left_id, r.right_id) for r in rows}
    assert found <= truth
    assert len(found) / len(truth) >= 0.95
    stats = out.statistics()
    assert stats["plan"] == "embeddings" and stats["k"] == 5
    assert stats["naive_pair_checks"] == 4_000_000 and stats["pair_checks"] <= 2000 * 5
    assert stats["check_requests"] <= 2000 * 5 // 25 + 10 and stats["embed_left_requests"] >= 1


def test_classification_plan_lists_a_small_right_side(spark, shared_emulator):
    left, right = join_sides(60, seed=9)
    right = right[:20]
    truth = join_truth(left, right)
    lefts = spark.createDataFrame(list(enumerate(left)), "id int, name string")
    rights = spark.createDataFrame([(i, t, i * 10) for i, t in enumerate(right)], "id int, title string, n int")
    out = ai.join(lefts, rights, CONDITION, **kwargs(shared_emulator.endpoint))
    rows = out.collect()
    assert {(r.left_id, r.right_id) for r in rows} == truth and truth
    assert all(r.n == r.right_id * 10 and r.error is None for r in rows)
    stats = out.statistics()
    assert stats["plan"] == "classification" and stats["check_requests"] == 60 and stats["pair_checks"] == 1200


def test_a_failed_check_keeps_the_pair_with_its_error(spark, shared_emulator):
    lefts = spark.createDataFrame([(0, "zabezo kitolu"), (1, None)], "id int, name string")
    rights = spark.createDataFrame([(0, "zabezo kitolu")], "id int, title string")
    rows = ai.join(lefts, rights, CONDITION, **kwargs(shared_emulator.endpoint)).orderBy("left_id").collect()
    assert [(r.left_id, r.right_id, r.error) for r in rows[:1]] == [(0, 0, None)]
    assert rows[1].left_id == 1 and rows[1].right_id is None and rows[1].error.code == "invalid_input"


def test_bad_settings_are_refused_on_the_driver():
    with pytest.raises(ConfigurationError, match="both sides"):
        ai.SemanticJoin("{left.a} is nice", ai._semantic_stage, plan="classification")
    with pytest.raises(ConfigurationError, match="embeddingDeploymentName"):
        ai.SemanticJoin(CONDITION, ai._semantic_stage, plan="embeddings")
    with pytest.raises(ConfigurationError, match="k must be"):
        ai.SemanticJoin(CONDITION, ai._semantic_stage, k=0, plan="classification")
