"""The Responses API and reasoning models over local Spark, against the emulator."""

from __future__ import annotations

import pytest

from spark_aoai import ChatCompletion, ConfigurationError
from spark_aoai.emulator import Emulator, chat_reply

DEPLOYMENTS = {"gpt-4o": "gpt-4o", "gpt-5-mini": "gpt-5-mini", "o4-mini": "o4-mini"}


@pytest.fixture(scope="module")
def strict():
    with Emulator(deployments=DEPLOYMENTS) as emu:
        yield emu


def questions(spark, n: int = 12):
    return spark.createDataFrame([(i, f"question {i}") for i in range(n)], "id int, q string").repartition(2)


@pytest.mark.parametrize("api", ["chat_completions", "responses"])
@pytest.mark.parametrize("deployment", ["gpt-4o", "gpt-5-mini"])
def test_each_row_gets_its_own_answer_with_either_api(spark, strict, api, deployment):
    strict.reset_stats()
    stage = ChatCompletion(
        deploymentName=deployment,
        promptCol="q",
        endpoint=strict.endpoint,
        apiType=api,
        systemPrompt="Answer briefly.",
        maxTokens=800,
        temperature=0.3,
        usageCol="usage",
        finishReasonCol="finish",
    )
    rows = stage.transform(questions(spark)).collect()
    assert len(rows) == 12
    for r in rows:
        assert r.error is None, r.error  # no 400 reaches a row: max_tokens and temperature are mapped
        assert r.response == chat_reply([{"role": "user", "content": f"question {r.id}"}])
        assert r.finish == "stop" and r.usage.prompt_tokens > 0
        if deployment.startswith("gpt-5"):
            assert r.usage.reasoning_tokens > 0
    paths = strict.stats()["paths"]
    if api == "responses":
        assert set(paths) == {"/openai/v1/responses"}
    else:
        assert set(paths) == {f"/openai/deployments/{deployment}/chat/completions"}


def test_reasoning_effort_and_verbosity_are_sent(spark, strict):
    stage = ChatCompletion(
        deploymentName="o4-mini", promptCol="q", endpoint=strict.endpoint, apiType="responses",
        reasoningEffort="low", verbosity="low",
    )  # fmt: skip
    assert all(r.error is None for r in stage.transform(questions(spark, 2)).collect())
    with pytest.raises(ConfigurationError, match="reasoningEffort and verbosity are for reasoning models"):
        ChatCompletion(deploymentName="gpt-4o", promptCol="q", endpoint=strict.endpoint, reasoningEffort="low")._plan(
            None, None
        )
    with pytest.raises(ConfigurationError, match="reasoningEffort must be one of"):
        ChatCompletion(deploymentName="o3", promptCol="q", endpoint=strict.endpoint, reasoningEffort="max")._plan(
            None, None
        )


def test_the_older_responses_path_when_an_api_version_is_given(spark, strict):
    strict.reset_stats()
    stage = ChatCompletion(
        deploymentName="gpt-4o", promptCol="q", endpoint=strict.endpoint, apiType="responses",
        apiVersion="2025-04-01-preview",
    )  # fmt: skip
    assert all(r.error is None for r in stage.transform(questions(spark, 2)).collect())
    assert set(strict.stats()["paths"]) == {"/openai/responses"}


@pytest.mark.parametrize("api", ["chat_completions", "responses"])
def test_an_answer_cut_short_before_any_text_is_an_incomplete_row_with_its_usage(spark, strict, api):
    # gpt-5 thinks 192 tokens at the default effort: with maxTokens=100 the reasoning uses the whole budget
    common = {"deploymentName": "gpt-5-mini", "promptCol": "q", "endpoint": strict.endpoint, "apiType": api,
              "usageCol": "usage", "finishReasonCol": "finish"}  # fmt: skip
    rows = ChatCompletion(maxTokens=100, **common).transform(questions(spark, 4)).collect()
    assert len(rows) == 4
    for r in rows:
        assert r.response is None and r.error.code == "incomplete" and r.error.status == 200, r
        assert "maxTokens" in r.error.message and r.error.attempts == 1
        assert r.finish is None  # the finish column is for answers; the error says why
        assert r.usage.completion_tokens == 100 and r.usage.reasoning_tokens == 100  # billed, so reported
    # enough for the thinking, not for the whole answer: the text so far is the answer, flagged "length"
    rows = ChatCompletion(maxTokens=20, reasoningEffort="minimal", **common).transform(questions(spark, 4)).collect()
    for r in rows:
        assert r.error is None and r.response and r.finish == "length", r
        assert chat_reply([{"role": "user", "content": f"question {r.id}"}]).startswith(r.response)
