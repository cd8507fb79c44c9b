"""spark_aoai.ai over local Spark against the emulator: each helper's columns and Spark types, each row's value
as the emulator produced it, labels re-checked, save/load without secrets (alone and in a Pipeline), SQL."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from spark_aoai import ai
from spark_aoai._planning.tasks import SENTIMENTS, classify_output
from spark_aoai.emulator import Faults, chat_reply, embed_text, value_for_schema
from spark_aoai.exceptions import ConfigurationError

SECRET = "sk-never-saved-0123456789"
TEXTS = ["The app crashes when I upload a photo", "Please add dark mode", "How do I export my data?", "Love it"]
LABELS = ["bug", "feature", "question"]


def kwargs(endpoint, **extra):
    return {"deploymentName": "gpt-4o", "endpoint": endpoint, "apiKey": SECRET, **extra}


def reply(stage, text):
    """The emulator's text answer to ``text`` under the stage's instructions (its system prompt)."""
    return chat_reply([{"role": "system", "content": stage._system_prompt()}, {"role": "user", "content": text}])


def structured(stage, text):
    output = stage._structured_output()
    value = value_for_schema(output.shape.json_schema(), reply(stage, text), prompt=text)
    return output.parse(json.dumps(value))


def label_for(labels, text):
    """The label the emulator picks for ``text`` (it reads the prompt's words and sentiment)."""
    output = classify_output({"labels": labels})
    return output.parse(json.dumps(value_for_schema(output.shape.json_schema(), "", prompt=text)))


@pytest.fixture
def tickets(spark):
    return spark.createDataFrame(list(enumerate(TEXTS)), "id int, text string").repartition(2)


def run(stage, df):
    out = stage.transform(df)
    return out, {r.id: r for r in out.collect()}


HELPERS = [
    ("classify", lambda e: ai.classify("text", labels=LABELS, **kwargs(e)), "label", "string"),
    ("multi", lambda e: ai.classify("text", labels=LABELS, multiLabel=True, **kwargs(e)), "label", "array<string>"),
    ("extract", lambda e: ai.extract("text", fields=["product", "action"], **kwargs(e)), "extracted",
     "struct<product:string,action:string>"),
    ("typed", lambda e: ai.extract("text", fields="steps int, urgent boolean", **kwargs(e)), "extracted",
     "struct<steps:int,urgent:boolean>"),
    ("sentiment", lambda e: ai.sentiment("text", **kwargs(e)), "sentiment", "string"),
    ("summarize", lambda e: ai.summarize("text", maxWords=10, **kwargs(e)), "summary", "string"),
    ("translate", lambda e: ai.translate("text", to="French", **kwargs(e)), "translation", "string"),
    ("fix_grammar", lambda e: ai.fix_grammar("text", **kwargs(e)), "corrected", "string"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "make", "column", "spark_type"), HELPERS, ids=[h[0] for h in HELPERS])
def test_each_chat_helper_adds_its_typed_column_with_each_rows_value(
    spark, shared_emulator, tickets, name, make, column, spark_type
):
    shared_emulator.configure(faults=Faults())
    stage = make(shared_emulator.endpoint)
    out, rows = run(stage, tickets)
    assert out.columns == ["id", "text", column, "error"]
    assert out.schema[column].dataType.simpleString() == spark_type
    for i, text in enumerate(TEXTS):
        assert rows[i].error is None
        value = rows[i][column]
        if stage._structured_output() is None:
            assert value == reply(stage, text)
        else:
            want = structured(stage, text)
            assert (value.asDict() if hasattr(value, "asDict") else value) == want
    if name in ("classify", "multi", "sentiment"):
        labels = LABELS if name != "sentiment" else ["positive", "negative", "neutral", "mixed"]
        assert all(set([r[column]] if isinstance(r[column], str) else r[column]) <= set(labels) for r in rows.values())


def test_prompts_carry_the_settings(shared_emulator):
    e = shared_emulator.endpoint
    assert "bug, feature, question" in ai.classify("text", labels=LABELS, **kwargs(e))._system_prompt()
    assert "into French" in ai.translate("text", to="French", **kwargs(e))._system_prompt()
    assert "at most 50 words" in ai.summarize("text", **kwargs(e))._system_prompt()
    assert "city (where they live)" in ai.extract("t", fields={"city": "where they live"}, **kwargs(e))._system_prompt()
    shown = ai.classify("text", labels=LABELS, **kwargs(e)).explainParams()
    assert "labels: the labels to choose from" in shown and "Classify the user's text" in shown
    assert "multiLabel" in shown and SECRET not in shown


def test_bad_settings_are_driver_side_errors(tickets, shared_emulator):
    e = shared_emulator.endpoint
    with pytest.raises(ConfigurationError, match="labels must be distinct"):
        ai.classify("text", labels=["a", "a"], **kwargs(e)).transform(tickets)
    with pytest.raises(ConfigurationError, match=r"\{to\}"):
        ai.Translate(promptCol="text", **kwargs(e)).transform(tickets)
    with pytest.raises(ConfigurationError, match="maxWords"):
        ai.summarize("text", maxWords=0, **kwargs(e)).transform(tickets)
    with pytest.raises(ConfigurationError, match="promptCol: column 'nope'"):
        ai.sentiment("nope", **kwargs(e)).transform(tickets)


def test_labels_outside_the_enum_are_invalid_output_never_a_wrong_label(spark, emulator):
    from tests.test_structured import bad_answers

    kinds = ["a bug: it crashes", "a feature: please add export", "a question: how do I log in?"]
    df = spark.createDataFrame([(i, f"ticket {i}, {kinds[i % 3]}") for i in range(200)], "id int, text string")
    rows = ai.classify("text", labels=LABELS, **kwargs(bad_answers(emulator))).transform(df).collect()
    good = [r for r in rows if r.error is None]
    bad = [r for r in rows if r.error is not None]
    assert len(rows) == 200 and len(good) > 150 and bad
    assert all(r.label == label_for(LABELS, r.text) for r in good)
    assert all(r.label is None and r.error.code == "invalid_output" for r in bad)


def test_similarity_and_embed(spark, shared_emulator):
    shared_emulator.configure(faults=Faults())
    pairs = [(0, "reset my password", "forgot my password"), (1, "dark mode", "reset my password"), (2, "x", None)]
    df = spark.createDataFrame(pairs, "id int, a string, b string")
    e = {**kwargs(shared_emulator.endpoint), "deploymentName": "text-embedding-3-small"}
    out = ai.similarity("a", "b", **e).transform(df)
    assert out.columns == ["id", "a", "b", "similarity", "error"]
    assert out.schema["similarity"].dataType.simpleString() == "double"
    rows = {r.id: r for r in out.collect()}
    for i, a, b in pairs[:2]:
        va, vb = embed_text(a, 1536).astype(np.float64), embed_text(b, 1536).astype(np.float64)
        assert rows[i].similarity == pytest.approx(float(va @ vb / np.linalg.norm(va) / np.linalg.norm(vb)), abs=1e-9)
    assert rows[0].similarity > rows[1].similarity
    assert rows[2].similarity is None and rows[2].error.code == "invalid_input"
    embedded = ai.embed("a", **e).transform(df).orderBy("id").first()
    assert np.allclose(embedded.embedding, embed_text("reset my password", 1536))


def all_helpers(endpoint):
    stages = [make(endpoint) for _, make, _, _ in HELPERS]
    stages += [ai.similarity("text", "text", **kwargs(endpoint, deploymentName="text-embedding-3-small")),
               ai.embed("text", **kwargs(endpoint, deploymentName="text-embedding-3-small")),
               ai.generate("Tagline for {text}", outputCol="tagline", **kwargs(endpoint))]  # fmt: skip
    for i, stage in enumerate(stages):
        stage.setParams(outputCol=f"out_{i}", errorCol=f"err_{i}")
    return stages


def saved_text(path):
    return "".join(open(os.path.join(d, f)).read() for d, _, fs in os.walk(path) for f in fs if not f.startswith("."))


def test_each_helper_saves_and_loads_without_secrets(shared_emulator, tmp_path):
    for i, stage in enumerate(all_helpers(shared_emulator.endpoint)):
        path = str(tmp_path / f"stage_{i}")
        stage.save(path)
        assert SECRET not in saved_text(path)
        loaded = type(stage).load(path)
        assert type(loaded) is type(stage)
        assert {p.name: v for p, v in loaded.extractParamMap().items()} == {
            p.name: v for p, v in stage.extractParamMap().items()
        }
        assert loaded._secrets == {}


def test_a_pipeline_of_every_helper_round_trips_and_runs(spark, shared_emulator, tickets, tmp_path):
    from pyspark.ml import Pipeline, PipelineModel

    shared_emulator.configure(faults=Faults())
    model = Pipeline(stages=all_helpers(shared_emulator.endpoint)).fit(tickets)
    model.save(str(tmp_path / "model"))
    assert SECRET not in saved_text(tmp_path / "model")
    loaded = PipelineModel.load(str(tmp_path / "model"))
    assert [type(s) for s in loaded.stages] == [type(s) for s in model.stages]
    out = loaded.transform(tickets)
    n = len(model.stages)
    assert out.columns == ["id", "text"] + [c for i in range(n) for c in (f"out_{i}", f"err_{i}")]
    first = out.where("id = 0").first()
    assert all(first[f"err_{i}"] is None for i in range(n))
    assert first["out_0"] == label_for(LABELS, TEXTS[0]) and first[f"out_{n - 3}"] == pytest.approx(1.0)


def test_sql_functions(spark, shared_emulator):
    shared_emulator.configure(faults=Faults())
    names = ai.register(spark, embeddingDeploymentName="text-embedding-3-small", **kwargs(shared_emulator.endpoint))
    assert names == ["ai_classify", "ai_embed", "ai_extract", "ai_filter", "ai_filter_result", "ai_generate",
                     "ai_sentiment", "ai_similarity", "ai_summarize", "ai_translate"]  # fmt: skip
    spark.createDataFrame([(0, TEXTS[0]), (1, None)], "id int, text string").createOrReplaceTempView("tickets")
    row = spark.sql(
        """SELECT ai_generate(text) g, ai_sentiment(text) s, ai_summarize(text) m, ai_translate(text, 'German') t,
                  ai_classify(text, array('bug', 'other')) c, ai_extract(text, array('product')) x,
                  ai_embed(text) e, ai_similarity(text, 'photo upload crash') sim
           FROM tickets ORDER BY id"""
    ).collect()
    ok, null = row
    assert ok.g.response == chat_reply([{"role": "user", "content": TEXTS[0]}]) and ok.g.error is None
    assert ok.s.sentiment == label_for(list(SENTIMENTS), TEXTS[0])
    assert ok.c.label == label_for(["bug", "other"], TEXTS[0])
    answer = chat_reply([{"role": "user", "content": TEXTS[0]}])  # the emulator answers the user's text
    assert ok.t.translation == answer and ok.m.summary == answer and ok.x.extracted == {"product": answer}
    assert np.allclose(ok.e.embedding, embed_text(TEXTS[0], 1536))
    va, vb = embed_text(TEXTS[0], 1536).astype(float), embed_text("photo upload crash", 1536).astype(float)
    assert ok.sim.similarity == pytest.approx(float(va @ vb / np.linalg.norm(va) / np.linalg.norm(vb)), abs=1e-9)
    assert all(v[0] is None and v.error.code == "invalid_input" for v in null)
    assert [ok[name].__fields__ for name in ("c", "e")] == [["label", "error"], ["embedding", "error"]]
    with pytest.raises(ConfigurationError, match="outputCol cannot be set"):
        ai.register(spark, outputCol="result", **kwargs(shared_emulator.endpoint))


def test_sql_arguments_are_checked_when_the_query_is_analysed(spark, shared_emulator):
    from pyspark.errors import AnalysisException

    shared_emulator.configure(faults=Faults())
    ai.register(spark, embeddingDeploymentName="text-embedding-3-small", **kwargs(shared_emulator.endpoint))
    spark.createDataFrame([(0, TEXTS[0])], "id int, text string").createOrReplaceTempView("sql_args")
    shared_emulator.reset_stats()
    wrong_type = 'cannot cast "STRING" to "ARRAY<STRING>"'
    for call, message in (
        ("ai_classify(text, 'bug')", wrong_type),  # never the labels 'b', 'u', 'g'
        ("ai_classify(text, 'bug,feature')", wrong_type),
        ("ai_extract(text, 'product')", wrong_type),
        ("ai_classify(text)", "The `ai_classify` requires 2 parameters but the actual number is 1"),
        ("ai_extract(text, array('a'), 3)", "The `ai_extract` requires 2 parameters but the actual number is 3"),
        ("ai_generate(text, 'x')", "The `ai_generate` requires 1 parameters but the actual number is 2"),
        ("ai_sentiment()", "The `ai_sentiment` requires 1 parameters but the actual number is 0"),
        ("ai_summarize(text, 10)", "The `ai_summarize` requires 1 parameters but the actual number is 2"),
        ("ai_translate(text)", "The `ai_translate` requires 2 parameters but the actual number is 1"),
        ("ai_embed(text, text)", "The `ai_embed` requires 1 parameters but the actual number is 2"),
        ("ai_similarity(text)", "The `ai_similarity` requires 2 parameters but the actual number is 1"),
    ):
        with pytest.raises(AnalysisException, match=re.escape(message)):
            spark.sql(f"SELECT {call} FROM sql_args")
    rows = spark.sql(
        "SELECT ai_classify(text, array('bug')) one, ai_classify(text, array('a', 'a')) twice, "
        "ai_extract(text, array('a', NULL)) null_field FROM sql_args"
    ).collect()
    assert rows[0].one.error.code == "invalid_input" and "labels needs at least 2" in rows[0].one.error.message
    assert "labels must be distinct" in rows[0].twice.error.message
    assert "fields must hold non-blank strings only" in rows[0].null_field.error.message
    assert shared_emulator.stats()["requests"] == {}  # nothing was sent for any of them
