"""ChatCompletion and chat_udf on a real local Spark session against the emulator."""

from __future__ import annotations

import json
import re

import pytest
from chispa import assert_df_equality
from pyspark.ml import Pipeline
from pyspark.sql import Row
from pyspark.sql import functions as F

from spark_aoai import ChatCompletion, ConfigurationError, chat_udf, failure_of
from spark_aoai.emulator import Faults, RateLimit, chat_reply

KEY = "sk-test-very-secret-key-1234"


def prompts_df(spark, n: int, partitions: int = 2, prefix: str = "question"):
    rows = [(i, f"{prefix} {i}") for i in range(n)]
    return spark.createDataFrame(rows, "id int, prompt string").repartition(partitions)


def chat(url: str, **kwargs) -> ChatCompletion:
    defaults = {"deploymentName": "gpt-4o", "promptCol": "prompt", "endpoint": url, "apiKey": KEY}
    return ChatCompletion(**{**defaults, **kwargs})


def reply(prompt: str, system: str | None = None) -> str:
    return chat_reply([{"role": "user", "content": prompt}])


def test_adds_response_and_error_and_keeps_every_row(spark, emulator):
    df = prompts_df(spark, 40)
    out = chat(emulator.endpoint).transform(df).cache()
    assert out.count() == 40
    assert out.columns == ["id", "prompt", "response", "error"]
    expected = spark.createDataFrame(
        [(i, f"question {i}", reply(f"question {i}")) for i in range(40)], "id int, prompt string, response string"
    )
    assert_df_equality(out.drop("error"), expected, ignore_row_order=True, ignore_nullable=True)
    assert out.where("error is not null").count() == 0
    stats = emulator.stats()
    assert stats["requests"] == {"chat 200": 40}  # exactly one request per prompt
    assert set(stats["inputs"].values()) == {1}


def test_df_transform_and_pipeline(spark, emulator):
    df = prompts_df(spark, 6)
    stage = chat(emulator.endpoint)
    via_transform = df.transform(stage.transform)
    via_pipeline = Pipeline(stages=[stage]).fit(df).transform(df)
    assert_df_equality(via_transform, via_pipeline, ignore_row_order=True)


def test_messages_column_and_system_prompt(spark, emulator):
    schema = "id int, messages array<struct<role:string,content:string>>"
    df = spark.createDataFrame(
        [
            (1, [Row(role="user", content="first")]),
            (2, [Row(role="system", content="be brief"), Row(role="user", content="second")]),
            (3, []),
            (4, None),
            (5, [Row(role="wizard", content="x")]),
        ],
        schema,
    )
    stage = chat(emulator.endpoint, promptCol=None, messagesCol="messages", systemPrompt="You are helpful.")
    rows = {r.id: r for r in stage.transform(df).collect()}
    assert rows[1].response == reply("first") and rows[2].response == reply("second")
    assert [rows[i].error.code for i in (3, 4, 5)] == ["invalid_input"] * 3
    assert "role 'wizard'" in rows[5].error.message


def test_no_row_lost_or_mixed_up_under_faults(spark, emulator):
    emulator.configure(
        rate_limit=RateLimit(requests_per_minute=60 * 150, window_seconds=0.05),  # 7.5 at once: under the opening 8
        faults=Faults(
            error_500_rate=0.1,
            error_503_rate=0.1,
            drop_rate=0.05,
            malformed_rate=0.05,
            latency_ms=10,
            jitter=0.8,
            content_filter_marker="<<bad>>",
            context_length_marker="<<long>>",
            seed=5,
        ),
    )
    rows = [
        (i, f"row {i}" + (" <<bad>>" if i % 50 == 3 else "") + (" <<long>>" if i % 50 == 4 else "")) for i in range(300)
    ]
    df = spark.createDataFrame(rows, "id int, prompt string").repartition(3)
    stage = chat(emulator.endpoint, maxAttempts=15)
    out = stage.transform(df).collect()
    assert sorted(r.id for r in out) == list(range(300))
    for r in out:
        assert (r.response is None) != (r.error is None)
        if r.id % 50 == 3:
            assert (r.error.status, r.error.code, r.error.attempts) == (400, "content_filter", 1)
        elif r.id % 50 == 4:
            assert (r.error.status, r.error.code) == (400, "context_length_exceeded")
        else:
            assert r.error is None, r.error
            assert r.response == reply(r.prompt)
    stats = emulator.stats()
    assert stats["requests"].get("chat 429", 0) > 0  # the burst limit was hit and absorbed
    answered = stats["answered_inputs"]
    sent = {r.prompt for r in out if r.id % 50 not in (3, 4)}
    assert set(answered) == sent and set(answered.values()) == {1}  # each answered once, none twice


def test_optional_usage_and_finish_reason_columns(spark, emulator):
    emulator.configure(faults=Faults(finish_content_filter_marker="<<cut>>"))
    df = spark.createDataFrame([(1, "fine"), (2, "<<cut>> this")], "id int, prompt string")
    out = chat(emulator.endpoint, usageCol="usage", finishReasonCol="finish_reason").transform(df)
    rows = {r.id: r for r in out.collect()}
    assert rows[1].finish_reason == "stop" and rows[1].usage.total_tokens > 0
    assert rows[2].finish_reason == "content_filter" and rows[2].error is None and rows[2].response == ""


def test_structured_output_and_extra_body(spark, emulator):
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": ["a", "b"]}},
        "required": ["label"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "label", "schema": schema, "strict": True}}
    df = spark.createDataFrame([(1, "classify me")], "id int, prompt string")
    out = chat(emulator.endpoint, responseFormat=fmt, temperature=0.0).transform(df).first()
    assert json.loads(out.response) == {"label": "a"}
    out = chat(emulator.endpoint, extraBody={"response_format": {"type": "json_object"}}).transform(df).first()
    assert isinstance(json.loads(out.response), dict)


def test_request_options_become_body_fields():
    stage = ChatCompletion(
        deploymentName="d",
        promptCol="p",
        temperature=0.2,
        topP=0.9,
        seed=1,
        stop="\n",
        presencePenalty=0.1,
        frequencyPenalty=0.2,
        user="u1",
        maxCompletionTokens=60,
        extraBody={"logprobs": True},
    )
    assert stage._request_options() == {
        "temperature": 0.2,
        "top_p": 0.9,
        "max_completion_tokens": 60,
        "seed": 1,
        "stop": ["\n"],
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "user": "u1",
        "logprobs": True,
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"promptCol": "nope"}, "column 'nope' not found"),
        ({"promptCol": "id"}, "is int, not string"),
        ({"promptCol": None}, "exactly one of promptCol and messagesCol"),
        ({"messagesCol": "prompt", "promptCol": None}, "not array<struct<role:string,content:string>>"),
        ({"deploymentName": None}, "deploymentName is not set"),
        ({"endpoint": None}, "no endpoint"),
        ({"endpoint": "not a url"}, "endpoint must be an http(s) URL"),
        ({"outputCol": "id"}, "already exists"),
        ({"aadToken": "t"}, "exactly one credential"),
        ({"responseFormat": "json"}, "responseFormat: "),
        ({"responseFormat": {"type": "xml"}}, "responseFormat must be a dict with type one of"),
        ({"responseFormat": {"type": "json_schema", "json_schema": {"schema": {}}}}, "json_schema needs"),
        ({"temperature": 9}, "temperature must be between 0 and 2"),
        ({"topP": 1.5}, "topP must be between 0 and 1"),
        ({"maxTokens": 5, "maxCompletionTokens": 5}, "maxTokens or maxCompletionTokens, not both"),
        ({"promptColumn": "prompt"}, "unknown Param 'promptColumn' for ChatCompletion; did you mean 'promptCol'?"),
        ({"requestTimeout": 0}, "requestTimeout must be greater than 0"),
        ({"connectTimeout": -1}, "connectTimeout must be greater than 0"),
        ({"deadlineSeconds": -1}, "deadlineSeconds must be 0 or more"),
        ({"maxRequestsPerMinute": -5}, "maxRequestsPerMinute must be 0 or more"),
        ({"maxTokensPerMinute": -1}, "maxTokensPerMinute must be 0 or more"),
        ({"concurrency": 0}, "concurrency must be at least 1"),
        ({"concurrentTasks": -2}, "concurrentTasks must be 0"),
        ({"maxRetryAfterSeconds": 0}, "maxRetryAfterSeconds must be greater than 0"),
        ({"onSystemicError": "ignore"}, "onSystemicError must be one of 'fail', 'mark'"),
        ({"apiKey": "abc def-secret-key"}, "apiKey contains whitespace"),
        ({"endpoint": "http://127.0.0.1:1/openai/deployments/gpt-4o"}, "already names a deployment"),
    ],
)
def test_bad_configuration_raises_on_the_driver(spark, emulator, kwargs, message):
    df = prompts_df(spark, 2)
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        chat(emulator.endpoint, **kwargs).transform(df)
    assert emulator.stats()["requests"] == {}


def test_an_endpoint_with_a_key_in_its_query_is_refused_without_quoting_it(spark, emulator):
    secret = "query-secret-key-123456"
    with pytest.raises(ConfigurationError) as raised:
        chat(f"{emulator.endpoint}/?api-key={secret}").transform(prompts_df(spark, 1))
    assert "must not have a query" in str(raised.value) and secret not in str(raised.value)


def test_a_key_read_from_a_file_with_its_newline_works(spark, emulator):
    from spark_aoai.emulator import Emulator

    with Emulator(api_key=KEY) as emu:
        rows = chat(emu.endpoint, apiKey=KEY + "\n").transform(prompts_df(spark, 3)).collect()
    assert all(r.error is None for r in rows)


def test_fail_on_error_fails_the_task(spark, emulator):
    emulator.configure(faults=Faults(content_filter_marker="<<bad>>"))
    df = spark.createDataFrame([(1, "ok"), (2, "<<bad>>")], "id int, prompt string")
    with pytest.raises(Exception, match="content_filter") as raised:
        chat(emulator.endpoint, failOnError=True).transform(df).collect()
    error = failure_of(raised.value)  # the row error, read back out of Spark's wrapping exception
    assert error is not None and (error["status"], error["code"]) == (400, "content_filter")
    assert "content_filter (status 400): " in str(raised.value)  # Python's message starts with the row error


def test_timeouts_become_error_values(spark, emulator):
    emulator.configure(faults=Faults(slow_rate=1.0, slow_seconds=3))
    df = spark.createDataFrame([(1, "slow")], "id int, prompt string")
    row = chat(emulator.endpoint, requestTimeout=0.3, maxAttempts=2).transform(df).first()
    assert (row.error.status, row.error.code, row.error.attempts) == (None, "timeout", 2)


def test_the_key_appears_nowhere(spark, capsys):
    from spark_aoai.emulator import Emulator

    with Emulator(api_key="the-right-key") as emu:
        stage = chat(emu.endpoint, onSystemicError="mark")
        df = prompts_df(spark, 3)
        out = stage.transform(df)
        rows = out.collect()
        assert all(r.error.status == 401 and r.error.code == "401" for r in rows)
        out.explain(extended=True)
        with pytest.raises(Exception) as raised:  # the default: a wrong key fails the job, naming the 401
            chat(emu.endpoint).transform(df).collect()
        texts = [
            repr(stage),
            str(stage),
            stage.explainParams(),
            capsys.readouterr().out,
            json.dumps([r.error.asDict() for r in rows]),
            str(raised.value),
        ]
        assert "401" in str(raised.value)
        assert all(KEY not in text for text in texts)
        good = chat(emu.endpoint, apiKey="the-right-key").transform(df)
        assert good.where("error is null").count() == 3


def test_chat_udf_in_a_column_expression(spark, emulator):
    ask = chat_udf(deploymentName="gpt-4o", endpoint=emulator.endpoint, apiKey=KEY, systemPrompt="Be brief.")
    df = spark.createDataFrame([(1, "one"), (2, None), (3, "three")], "id int, prompt string")
    out = df.select("id", ask(F.col("prompt")).alias("out")).select("id", "out.response", "out.error")
    rows = {r.id: r for r in out.collect()}
    assert rows[1].response == reply("one") and rows[3].response == reply("three")
    assert rows[2].response is None and rows[2].error.code == "invalid_input"
