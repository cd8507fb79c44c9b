"""ai.agg over a group far above a context window (20,000 texts, ~3 million tokens): one answer, every text
read once at level one, no request over the model's limit (the emulator refuses those), depth and requests
reported. Real emulator, local Spark."""

from __future__ import annotations

import pytest

from spark_aoai import ai
from spark_aoai.exceptions import ConfigurationError
from tests.semantic_data import THEMES, agg_texts

TEXTS = 20_000
INSTRUCTION = "List the main themes of these reviews"


def kwargs(endpoint, **extra):
    return {"deploymentName": "gpt-4o", "endpoint": endpoint, "apiKey": "sk-test", **extra}


def items_of(prompt):
    return [line[2:] for line in prompt.split("\n") if line.startswith("- ")]


def test_a_group_of_20000_texts_gets_one_answer(spark, shared_emulator):
    big, small = agg_texts(TEXTS), agg_texts(12, seed=3)
    rows = [("big", t) for t in big] + [("small", t) for t in small] + [("small", None)]
    df = spark.createDataFrame(rows, "product string, text string").repartition(2)
    shared_emulator.reset_stats()
    out = ai.agg(df, "product", "text", INSTRUCTION, **kwargs(shared_emulator.endpoint))
    got = {r.product: r for r in out.collect()}
    assert set(got) == {"big", "small"} and all(r.error is None for r in got.values())  # none over the limit
    assert set(got["big"].answer.split(", ")[:3]) == set(THEMES)
    assert got["big"].depth == 2 and got["small"].depth == 1 and got["small"].requests == 1
    stats = out.statistics()
    assert stats["depth"] == 2 and stats["levels"][0]["items_read"] == TEXTS + 12
    assert stats["requests"] == got["big"].requests + 1 == sum(stats["requests_per_level"])
    assert 24 <= stats["requests_per_level"][0] <= 40  # ~3M tokens / ~124k a prompt
    prompts = shared_emulator.stats()["inputs"]
    level_one = [p for p in prompts if p.startswith(f"Task: {INSTRUCTION}\n\nTexts:")]
    read = [text for prompt in level_one for text in items_of(prompt)]
    assert sorted(read) == sorted(big + small)  # each text exactly once at the first level


def test_a_small_budget_makes_a_deeper_tree_and_typed_answers(spark, shared_emulator):
    df = spark.createDataFrame([("a", t) for t in agg_texts(300, words_each=6)], "g string, text string")
    out = ai.agg(df, "g", "text", INSTRUCTION, maxPromptTokens=300, outputSchema="themes string",
                 **kwargs(shared_emulator.endpoint))  # fmt: skip
    row = out.collect()[0]
    assert row.error is None and row.depth >= 3 and set(row.answer.themes.split(", ")[:3]) == set(THEMES)
    assert row.requests == out.statistics()["requests"]


def test_an_unknown_model_needs_max_prompt_tokens():
    with pytest.raises(ConfigurationError, match="maxPromptTokens"):
        ai.SemanticAgg(INSTRUCTION, ai._semantic_stage, deploymentName="my-model")
