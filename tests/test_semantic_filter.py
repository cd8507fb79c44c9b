"""ai.filter and SQL ai_filter against the emulator's ground truth (``emulator._semantic.holds``): the rows
kept on a 1,000-row table, packed and unpacked alike, and the SQL function in ``WHERE``. Real emulator, local
Spark."""

from __future__ import annotations

import random

import pytest

from spark_aoai import ai
from spark_aoai.emulator._semantic import holds, key_words, pair_matches
from spark_aoai.exceptions import ConfigurationError

CONDITION = "asks for a refund"
WORDS = [
    "parcel",
    "late",
    "broken",
    "screen",
    "login",
    "password",
    "invoice",
    "refund",
    "refunds",
    "refunded",
    "colour",
    "size",
    "delivery",
    "app",
]


def texts(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [f"ticket {i}: " + " ".join(rng.sample(WORDS, 3)) for i in range(n)]


def kwargs(endpoint, **extra):
    return {"deploymentName": "gpt-4o", "endpoint": endpoint, "apiKey": "sk-test", **extra}


def test_the_emulator_rules_are_plausible():
    assert holds(CONDITION, "please refund me") and holds(CONDITION, "I want my money refunded")
    assert not holds(CONDITION, "where is my parcel?")
    assert key_words("Asks for a refund") == {"asks", "refund"}
    assert pair_matches("Acme blue kettle 2L", "Blue kettle by Acme") and not pair_matches("blue kettle", "red cup")


@pytest.mark.parametrize("rows_per_request", [1, 25])
def test_filter_keeps_the_ground_truth_rows(spark, shared_emulator, rows_per_request):
    shared_emulator.reset_stats()
    data = texts(1000)
    df = spark.createDataFrame(list(enumerate(data)), "id int, text string").repartition(2)
    stage = ai.filter("text", CONDITION, rowsPerRequest=rows_per_request, **kwargs(shared_emulator.endpoint))
    out = df.transform(stage.transform)
    assert dict(out.dtypes)["keep"] == "boolean"
    got = sorted(r.id for r in out.where("keep").select("id").collect())
    expected = [i for i, t in enumerate(data) if holds(CONDITION, t)]
    assert got == expected and 0 < len(expected) < 1000
    stats = stage.statistics()
    assert stats.rows == 1000 and stats.rows_failed == 0
    assert stats.requests == (1000 if rows_per_request == 1 else pytest.approx(40, abs=4))


def test_condition_is_a_template_over_columns(spark, shared_emulator):
    df = spark.createDataFrame([(0, "the login page fails", "login"), (1, "the login page fails", "invoice")],
                               "id int, text string, topic string")  # fmt: skip
    out = ai.filter("text", "is about {topic}", outputCol="about", **kwargs(shared_emulator.endpoint)).transform(df)
    assert [(r.id, r.about, r.error) for r in out.orderBy("id").collect()] == [(0, True, None), (1, False, None)]


def test_filter_is_refused_without_a_condition():
    with pytest.raises(ConfigurationError, match="condition"):
        ai.filter("text", "lone { brace", deploymentName="gpt-4o")


def test_sql_ai_filter_in_where(spark, shared_emulator):
    ai.register(spark, **kwargs(shared_emulator.endpoint))
    data = [*texts(60, seed=3), None]
    spark.createDataFrame(list(enumerate(data)), "id int, text string").createOrReplaceTempView("filter_tickets")
    got = spark.sql(f"SELECT id FROM filter_tickets WHERE ai_filter(text, '{CONDITION}')").collect()
    assert sorted(r.id for r in got) == [i for i, t in enumerate(data) if t is not None and holds(CONDITION, t)]
    checked = spark.sql(f"SELECT id, ai_filter_result(text, '{CONDITION}') AS f FROM filter_tickets").collect()
    null_row = next(r for r in checked if r.id == 60)
    assert null_row.f.keep is None and null_row.f.error.code == "invalid_input"
    assert spark.sql("SELECT ai_filter(text, 'refund') AS k FROM filter_tickets WHERE id = 60").collect()[0].k is None


def test_filter_saves_and_loads(spark, tmp_path):
    stage = ai.filter("text", "is about {topic}", deploymentName="gpt-4o", apiKey="sk-secret-0123")
    stage.save(str(tmp_path / "f"))
    loaded = ai.Filter.load(str(tmp_path / "f"))
    assert (loaded.getInputCol(), loaded.getCondition(), loaded.getOutputCol()) == ("text", "is about {topic}", "keep")
    assert "sk-secret" not in "".join(p.read_text() for p in (tmp_path / "f").rglob("part-*"))
