"""One path: every flavour (the Transformer, both UDFs, every SQL function, ai.similarity) runs a stage's rows
through ``Plan.run``, so none drops a Param (``dedup`` here), and every stage's driver-side features
(``statistics()``, the progress line, ``estimate()``) work, ai.similarity's included. Real emulator, local Spark.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

from spark_aoai import ai
from spark_aoai.emulator import Faults
from spark_aoai.functions import chat_udf, embedding_udf
from spark_aoai.transformers import ChatCompletion, Embedding

DISTINCT = [f"ticket {i}: the app crashes on screen {i}" for i in range(14)]
TEXTS = DISTINCT + DISTINCT[:6]  # 20 rows, 30% of them repeat an earlier prompt
OTHER = "the export button does nothing"
PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "spark_aoai"


def kwargs(endpoint, deployment="gpt-4o", **extra):
    return {"deploymentName": deployment, "endpoint": endpoint, "apiKey": "sk-test", **extra}


@pytest.fixture
def repeated(spark):
    """One partition (dedup is per task) of 20 rows, 6 of them repeats."""
    return spark.createDataFrame(list(enumerate(TEXTS)), "id int, text string").coalesce(1)


def received(emulator):
    return dict(emulator.stats()["inputs"])


def test_the_counting_sees_repeats_when_dedup_is_off(emulator, repeated):
    ChatCompletion(promptCol="text", dedup=False, **kwargs(emulator.endpoint)).transform(repeated).collect()
    assert received(emulator) == {text: TEXTS.count(text) for text in DISTINCT}


FLAVOURS = {
    "transformer": lambda e, df: ChatCompletion(promptCol="text", **kwargs(e)).transform(df),
    "embedding": lambda e, df: Embedding(inputCol="text", **kwargs(e, "text-embedding-3-small")).transform(df),
    "chat_udf": lambda e, df: df.select(chat_udf(**kwargs(e))("text").alias("out")),
    "embedding_udf": lambda e, df: df.select(embedding_udf(**kwargs(e, "text-embedding-3-small"))("text").alias("out")),
    "similarity": lambda e, df: ai.similarity("text", "other", **kwargs(e, "text-embedding-3-small")).transform(
        df.withColumn("other", df.text)
    ),
}  # fmt: skip


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_each_flavour_sends_each_distinct_prompt_once(emulator, repeated, flavour):
    out = FLAVOURS[flavour](emulator.endpoint, repeated)
    rows = out.collect()
    assert len(rows) == len(TEXTS)
    assert received(emulator) == dict.fromkeys(DISTINCT, 1)


SQL = {  # every function ``ai.register`` makes, over the repeated column
    "ai_generate": "ai_generate(text)",
    "ai_sentiment": "ai_sentiment(text)",
    "ai_summarize": "ai_summarize(text)",
    "ai_translate": "ai_translate(text, 'French')",
    "ai_classify": "ai_classify(text, array('bug', 'other'))",
    "ai_extract": "ai_extract(text, array('product'))",
    "ai_embed": "ai_embed(text)",
    "ai_similarity": f"ai_similarity(text, '{OTHER}')",
    "ai_filter": "ai_filter(text, 'crashes')",
    "ai_filter_result": "ai_filter_result(text, 'crashes')",
}


def test_every_sql_function_sends_each_distinct_prompt_once(spark, emulator, repeated):
    names = ai.register(spark, embeddingDeploymentName="text-embedding-3-small", **kwargs(emulator.endpoint))
    assert sorted(SQL) == names
    repeated.createOrReplaceTempView("repeated_tickets")
    for name, call in SQL.items():
        emulator.reset_stats()
        rows = spark.sql(f"SELECT id, {call} AS out FROM repeated_tickets").collect()
        assert len(rows) == len(TEXTS), name
        assert all(r.out is True if name == "ai_filter" else r.out.error is None for r in rows), name
        expected = dict.fromkeys(DISTINCT, 1) | ({OTHER: 1} if name == "ai_similarity" else {})
        if name.startswith("ai_filter"):
            expected = {f"Condition: crashes\n\nText: {text}": 1 for text in DISTINCT}
        assert received(emulator) == expected, name


def every_stage(endpoint):
    emb = kwargs(endpoint, "text-embedding-3-small")
    keywords = ai.Task("keywords", "List the keywords of the user's text.", outputSchema="keywords array<string>")
    return {
        "ChatCompletion": ChatCompletion(promptCol="text", **kwargs(endpoint)),
        "Embedding": Embedding(inputCol="text", **emb),
        "generate": ai.generate("A tagline for {text}", **kwargs(endpoint)),
        "classify": ai.classify("text", labels=["bug", "other"], **kwargs(endpoint)),
        "extract": ai.extract("text", fields=["product"], **kwargs(endpoint)),
        "sentiment": ai.sentiment("text", **kwargs(endpoint)),
        "summarize": ai.summarize("text", **kwargs(endpoint)),
        "translate": ai.translate("text", to="French", **kwargs(endpoint)),
        "fix_grammar": ai.fix_grammar("text", **kwargs(endpoint)),
        "filter": ai.filter("text", "crashes", **kwargs(endpoint)),
        "run": ai.run(keywords, "text", **kwargs(endpoint)),
        "embed": ai.embed("text", **emb),
        "similarity": ai.similarity("text", "other", **emb),
    }


def test_statistics_progress_and_estimate_work_for_every_stage(spark, shared_emulator):
    shared_emulator.configure(faults=Faults())
    texts = [f"ticket {i}: the app crashes" for i in range(6)] + [None]
    df = spark.createDataFrame([(i, t, f"other {i}") for i, t in enumerate(texts)], "id int, text string, other string")
    progress = {}
    for name, stage in every_stage(shared_emulator.endpoint).items():
        stage.setParams(progress=True, outputCol="out", errorCol="err")
        estimate = stage.estimate(df)
        assert estimate["rows"] == len(texts) and estimate["invalid_rows"] == 1, name
        assert estimate["requests"] >= 1 and estimate["prompt_tokens"] > 0, name
        stage.transform(df).collect()
        stats = stage.statistics()
        assert (stats.rows, stats.rows_failed, stats.errors_by_code) == (7, 1, {"invalid_input": 1}), name
        assert stats.requests is not None and stats.requests >= 1, name
        progress[name] = stage._usage_run.progress
    for name, line in progress.items():
        assert line is not None, name
        line.thread.join(10)
        # similarity's tasks embed two texts a row, and a row with a null side sends neither (both are its error)
        done = "14/14 texts (100%), 2 errors" if name == "similarity" else "7/7 rows (100%), 1 errors"
        assert line.lines and line.lines[-1].startswith(f"spark_aoai {line.label}: {done}"), name


def test_similarity_estimate_counts_both_sides(spark, shared_emulator):
    emb = kwargs(shared_emulator.endpoint, "text-embedding-3-small")
    df = spark.createDataFrame([(0, "reset my password", "forgot the password"), (1, "dark mode", None)],
                               "id int, a string, b string")  # fmt: skip
    both = ai.similarity("a", "b", **emb).estimate(df)
    # a pair with a null side sends neither text, so its left side is not counted either
    left, right = ai.embed("a", **emb).estimate(df.where("b IS NOT NULL")), ai.embed("b", **emb).estimate(df)
    assert both["prompt_tokens"] == left["prompt_tokens"] + right["prompt_tokens"] > 0
    assert (both["rows"], both["invalid_rows"]) == (2, 1)


def callers_of(name):
    """The modules of spark_aoai/ that call ``name`` (an AST walk: a call by that name or attribute)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                called = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
                if called == name:
                    found.append(str(path.relative_to(PACKAGE.parent)))
    return found


def test_the_partition_runner_has_exactly_one_caller():
    assert callers_of("run_partition") == ["spark_aoai/_engine/plan.py"]
