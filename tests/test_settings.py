"""Settings refused when they are set, naming the Param and the fix (no Spark: Params need no session).

A single Param's value (type, choice, range) is checked by its converter: constructor, ``setParams``, ``set``
(as ``load`` and pipelines set), ``copy``. Settings wrong only together are checked where the whole
configuration is known: the constructor, ``copy`` with extra Params, and ``transform``; ``setParams`` checks
the conflicts among the Params of its own call, so Params set one at a time are never refused half way.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from pyspark.ml import Pipeline

from spark_aoai import ChatCompletion, Embedding, ai
from spark_aoai._core.contract import InvalidInputError
from spark_aoai._planning.tasks import classify_for_row, extract_for_row
from spark_aoai.exceptions import ConfigurationError

CONNECTION = {"endpoint": "http://127.0.0.1:9", "apiKey": "k"}
CHAT = {"deploymentName": "gpt-4o", "promptCol": "q", **CONNECTION}
EMBED = {"deploymentName": "text-embedding-3-small", **CONNECTION}


def refused(message: str) -> object:
    return pytest.raises(ConfigurationError, match=re.escape(message))


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("mode", "offline", "mode must be one of 'online', 'batch', got 'offline'"),
        ("apiType", "response", "apiType must be one of 'chat_completions', 'responses', got 'response'"),
        ("apiStyle", "aoai", "apiStyle must be one of 'auto', 'azure', 'azure_v1', 'openai'"),
        ("onSystemicError", "ignore", "onSystemicError must be one of 'fail', 'mark'"),
        ("reasoningEffort", "max", "reasoningEffort must be one of 'minimal', 'low', 'medium', 'high'"),
        ("verbosity", "loud", "verbosity must be one of 'low', 'medium', 'high'"),
        ("temperature", 3, "temperature must be between 0 and 2, got 3"),
        ("temperature", float("nan"), "temperature must be a finite number"),
        ("topP", 1.5, "topP must be between 0 and 1"),
        ("presencePenalty", 2.5, "presencePenalty must be between -2 and 2"),
        ("frequencyPenalty", -3, "frequencyPenalty must be between -2 and 2"),
        ("maxTokens", 0, "maxTokens must be at least 1, got 0"),
        ("maxTokens", "100", "maxTokens must be a whole number, got '100' (str)"),
        ("maxTokens", True, "maxTokens must be a whole number"),
        ("maxCompletionTokens", -1, "maxCompletionTokens must be at least 1"),
        ("seed", 1.5, "seed must be a whole number, got 1.5"),
        ("stop", ["a", "b", "c", "d", "e"], "stop must be a string or a list of 1 to 4 strings"),
        ("stop", ["a", ""], "stop must hold non-empty strings only"),
        ("stop", [], "stop must be a string or a list of 1 to 4 strings"),
        ("concurrency", 0, "concurrency must be at least 1"),
        ("maxAttempts", 0, "maxAttempts must be at least 1"),
        ("requestTimeout", 0, "requestTimeout must be greater than 0"),
        ("connectTimeout", -1, "connectTimeout must be greater than 0"),
        ("deadlineSeconds", -1, "deadlineSeconds must be 0 or more"),
        ("maxRetryAfterSeconds", 0, "maxRetryAfterSeconds must be greater than 0"),
        ("maxRequestsPerMinute", -5, "maxRequestsPerMinute must be 0 or more"),
        ("maxTokensPerMinute", -1, "maxTokensPerMinute must be 0 or more"),
        ("concurrentTasks", -2, "concurrentTasks must be 0 or more"),
        ("maxTotalTokens", -1, "maxTotalTokens must be 0 or more"),
        ("maxCost", -0.5, "maxCost must be 0 or more"),
        ("outputRetries", -1, "outputRetries must be 0 or more"),
        ("maxPackTokens", 0, "maxPackTokens must be at least 1"),
        ("maxInputBytes", 0, "maxInputBytes must be at least 1"),
        ("batchTimeoutHours", 0, "batchTimeoutHours must be greater than 0"),
        ("batchPollSeconds", -1, "batchPollSeconds must be greater than 0"),
        ("batchMaxLinesPerFile", 100_001, "batchMaxLinesPerFile must be between 1 and 100000"),
        ("batchMaxBytesPerFile", 0, "batchMaxBytesPerFile must be between 1 and"),
        ("rowsPerRequest", 0, "rowsPerRequest is a whole number of rows (1 or more) or 'auto'"),
        ("responseFormat", {"type": "xml"}, "responseFormat must be a dict with type one of"),
        ("responseFormat", "json", "responseFormat: expected a dict or JSON text"),
        ("responseFormat", {"type": "json_schema", "json_schema": {"schema": {}}}, "responseFormat: json_schema needs"),
        ("promptTemplate", "Summarise {title", "promptTemplate: expected '}' before end of string"),
        ("promptTemplate", "Hi {}", "promptTemplate: empty placeholder {}"),
    ],
)
def test_a_chat_param_out_of_its_values_is_refused_when_set(param, value, message):
    with refused(message):
        ChatCompletion(**CHAT, **{param: value})
    stage = ChatCompletion(**CHAT)
    with refused(message):
        stage.setParams(**{param: value})
    with refused(message):  # as load() and pipelines set Params
        stage.set(stage.getParam(param), value)
    with refused(message):
        stage.copy({stage.getParam(param): value})


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("batchSize", 5000, "batchSize must be between 1 and 2048, got 5000"),
        ("batchSize", 0, "batchSize must be between 1 and 2048"),
        ("maxBatchTokens", 0, "maxBatchTokens must be at least 1"),
        ("dimensions", -1, "dimensions must be 0 or more"),
        ("outputType", "matrix", "outputType must be one of 'array', 'vector'"),
    ],
)
def test_an_embedding_param_out_of_its_values_is_refused_when_set(param, value, message):
    with refused(message):
        Embedding(**EMBED, inputCol="q", **{param: value})


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: ai.classify("t", labels="bug,feature", **CONNECTION),
            "labels must be a list of strings, not one string 'bug,feature': labels=['bug', 'feature']",
        ),
        (
            lambda: ai.classify("t", labels="bug", **CONNECTION),
            "labels must be a list of strings, not one string 'bug'",
        ),
        (lambda: ai.classify("t", labels=["bug"], **CONNECTION), "labels needs at least 2 entries, got ['bug']"),
        (lambda: ai.classify("t", labels=[], **CONNECTION), "labels needs at least 2 entries"),
        (lambda: ai.classify("t", labels=["a", "a"], **CONNECTION), "labels must be distinct, ['a'] repeated"),
        (lambda: ai.classify("t", labels=["a", 1], **CONNECTION), "labels must hold non-blank strings only, got 1"),
        (lambda: ai.classify("t", labels=["a", " "], **CONNECTION), "labels must hold non-blank strings only, got ' '"),
        (lambda: ai.classify("t", labels={"a": 1, "b": 2}, **CONNECTION), "labels must be a list of strings, got dict"),
        (lambda: ai.classify("t", labels=["a", "b"], multiLabel="yes", **CONNECTION), "multiLabel"),
        (lambda: ai.extract("t", fields="name, city", **CONNECTION), "fields: 'name, city' is not a DDL schema"),
        (lambda: ai.extract("t", fields="name, city", **CONNECTION), "give a list: fields=['name', 'city']"),
        (lambda: ai.extract("t", fields=[], **CONNECTION), "fields needs at least 1 entry"),
        (lambda: ai.extract("t", fields=["a", "a"], **CONNECTION), "fields must be distinct"),
        (
            lambda: ai.extract("t", fields=["a", None], **CONNECTION),
            "fields must hold non-blank strings only, got None",
        ),
        (lambda: ai.extract("t", fields={"a": 1}, **CONNECTION), "fields: a dict maps each name to its description"),
        (lambda: ai.extract("t", fields={"": "x"}, **CONNECTION), "fields must hold non-blank strings only"),
        (lambda: ai.summarize("t", maxWords=0, **CONNECTION), "maxWords must be at least 1, got 0"),
        (lambda: ai.translate("t", to=" ", **CONNECTION), "to must be a non-blank string"),
        (lambda: ai.translate("t", to=["French"], **CONNECTION), "to must be a non-blank string"),
        (lambda: ai.similarity("a", "b", batchSize=0, **EMBED), "batchSize must be between 1 and 2048"),
        (lambda: ai.run("keywords", "t", **CONNECTION), "ai.run takes a Task, got str"),
        (lambda: ai.generate("Tag {product", **CONNECTION), "promptTemplate: expected '}'"),
        (
            lambda: ai.classify("t", labels=["a", "b"], outputSchema="x string", **CONNECTION),
            "Classify makes its own output; outputSchema cannot be set",
        ),
    ],
)
def test_task_helpers_refuse_wrong_lists_enums_and_mappings(make, message):
    with refused(message):
        make()


def test_classify_takes_two_or_more_distinct_labels_in_any_sequence():
    assert ai.classify("t", labels=("bug", "feature"), **CONNECTION).getLabels() == ["bug", "feature"]
    assert ai.classify("t", labels=np.array(["bug", "feature"]), **CONNECTION).getLabels() == ["bug", "feature"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"mode": "batch"}, "mode='batch' needs batchDir"),
        ({"apiType": "responses", "seed": 1}, "seed does not exist in the Responses API (apiType='responses')"),
        ({"apiType": "responses", "stop": "\n"}, "stop does not exist in the Responses API"),
        ({"apiType": "responses", "presencePenalty": 1}, "presencePenalty does not exist in the Responses API"),
        ({"apiType": "responses", "frequencyPenalty": 1}, "frequencyPenalty does not exist in the Responses API"),
        (
            {"apiType": "responses", "maxTokens": 10},
            "maxTokens=10 is below the Responses API's minimum "
            "max_output_tokens of 16 (every row would be a 400): set maxTokens=16 or more",
        ),
        ({"apiType": "responses", "maxCompletionTokens": 15}, "maxCompletionTokens=15 is below"),
        ({"maxTokens": 5, "maxCompletionTokens": 5}, "set maxTokens or maxCompletionTokens, not both"),
        (
            {"promptCol": None, "messagesCol": "m", "rowsPerRequest": 5},
            "rowsPerRequest: messagesCol (whole conversations) cannot be packed",
        ),
        ({"imageCol": "img", "rowsPerRequest": "auto"}, "rowsPerRequest: rows with imageCol are not packed"),
        ({"fileCol": "pdf", "rowsPerRequest": 2}, "rowsPerRequest: rows with fileCol are not packed"),
        ({"messagesCol": "m"}, "set exactly one of promptCol and messagesCol (or promptTemplate)"),
        ({"promptTemplate": "{q}"}, "set exactly one of promptCol and messagesCol (or promptTemplate)"),
        ({"deployments": '[{"deploymentName": "b"}]'}, "give deploymentName (one deployment) or deployments"),
        ({"reasoningEffort": "low"}, "reasoningEffort and verbosity are for reasoning models; deployment 'gpt-4o'"),
        ({"verbosity": "low"}, "reasoningEffort and verbosity are for reasoning models"),
        (
            {"outputSchema": "a string", "responseFormat": {"type": "json_object"}},
            "set outputSchema or responseFormat, not both",
        ),
    ],
)
def test_conflicting_settings_are_refused_by_the_constructor_and_by_copy(settings, message):
    with refused(message):
        ChatCompletion(**{**CHAT, **settings})
    given = {k: v for k, v in {**CHAT, **settings}.items() if v is not None}
    if "mode" in settings:
        ChatCompletion().setParams(**given)  # batchDir was not in this call: it may come in the next one
    else:
        with refused(message):  # every Param of the conflict given in one call
            ChatCompletion().setParams(**given)
    stage = ChatCompletion(**{k: v for k, v in CHAT.items() if k not in settings})
    extra = {stage.getParam(k): v for k, v in settings.items() if v is not None}
    with refused(message):  # a Pipeline's or a grid's extra Params: the copy is what will run
        Pipeline(stages=[stage]).copy(extra)
    with refused(message):
        stage.copy(extra)


def test_params_set_one_at_a_time_are_checked_together_at_transform_not_half_way():
    stage = ChatCompletion(**CHAT, seed=1)
    stage.setParams(apiType="responses")  # half way: seed is about to go
    with refused("seed does not exist in the Responses API"):
        stage._plan(None, None)  # what transform() runs first, before any job
    stage.clear(stage.seed)
    stage._check_settings()
    stage = ChatCompletion(**CHAT, apiType="responses")
    stage.set(stage.maxTokens, 10)  # as a loaded stage is set, one Param at a time
    stage.set(stage.apiType, "chat_completions")
    stage._check_settings()
    reasoning = ChatCompletion(**CHAT)
    reasoning.setParams(reasoningEffort="low")  # gpt-4o: refused unless reasoningModel comes next
    reasoning.setParams(reasoningModel=True)
    reasoning._check_settings()
    assert ChatCompletion(**{**CHAT, "deploymentName": "gpt-5-mini"}, reasoningEffort="low").getReasoningEffort()
    batch = ChatCompletion(**CHAT)
    batch.setParams(mode="batch")
    batch.setParams(batchDir="/tmp/batches")
    batch._check_settings()


def test_sql_arguments_of_a_row_are_checked_per_row_never_read_as_characters():
    with pytest.raises(InvalidInputError, match="labels must be a list of strings, not one string 'bug'"):
        classify_for_row({"labels": "bug"})
    with pytest.raises(InvalidInputError, match="labels needs at least 2 entries"):
        classify_for_row({"labels": np.array(["bug"])})
    with pytest.raises(InvalidInputError, match="fields must hold non-blank strings only, got None"):
        extract_for_row({"fields": np.array(["a", None], dtype=object)})
    with pytest.raises(InvalidInputError, match="fields must be distinct"):
        extract_for_row({"fields": ["a", "a"]})
    assert classify_for_row({"labels": np.array(["bug", "other"])}).shape.json_schema()["required"] == ["label"]
