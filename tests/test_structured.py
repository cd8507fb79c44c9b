"""Typed structured output and prompt templates: the pure conversions as tables, then over local Spark against
the emulator (each row's value is the one the emulator produced for it; answers that do not fit are re-asked,
then ``invalid_output``, never a wrong value)."""

from __future__ import annotations

import datetime as dt
import decimal
import json

import pytest

from spark_aoai._planning.schemas import output_from, schema_text
from spark_aoai._planning.structured import MisfitError
from spark_aoai._planning.template import Template
from spark_aoai.emulator import Faults, chat_reply, value_for_schema
from spark_aoai.exceptions import ConfigurationError

NESTED = (
    "sentiment string, score double, count bigint, small int NOT NULL, ok boolean, price decimal(8,2), "
    "topics array<string>, who struct<name: string, tags: array<struct<k: string, v: double>>>"
)

# -- schemas -> strict JSON schema -----------------------------------------------------------------------


def test_ddl_becomes_a_strict_schema_with_nullable_types():
    schema = output_from(NESTED).response_format()["json_schema"]
    body = schema["schema"]
    assert schema["strict"] is True
    assert body["additionalProperties"] is False and body["required"] == list(body["properties"])
    assert body["properties"]["sentiment"] == {"type": ["string", "null"]}
    assert body["properties"]["small"] == {"type": "integer"}
    assert body["properties"]["topics"] == {"type": ["array", "null"], "items": {"type": ["string", "null"]}}
    who = body["properties"]["who"]
    assert who["required"] == ["name", "tags"] and who["additionalProperties"] is False
    assert who["properties"]["tags"]["items"]["additionalProperties"] is False


@pytest.mark.parametrize(
    ("schema", "arrow"),
    [
        ("a string, b bigint, c int, d double, e float", "struct<a: string, b: int64, c: int32, d: double, e: float>"),
        ("d date, t timestamp, m decimal(5,1)",
         "struct<d: date32[day], t: timestamp[us, tz=UTC], m: decimal128(5, 1)>"),
        ("`odd name` array<struct<x: boolean>>", "struct<odd name: list<element: struct<x: bool>>>"),
        ({"type": "object", "properties": {"when": {"type": "string", "format": "date-time"}}},
         "struct<when: timestamp[us, tz=UTC] not null>"),
    ],
)  # fmt: skip
def test_each_source_gives_the_arrow_type(schema, arrow):
    assert str(output_from(schema_text(schema)).arrow_type()) == arrow


@pytest.mark.parametrize(
    ("schema", "named"),
    [("a string, tags map<string,string>", "'tags'"), ("s struct<inner: map<string,int>>", "'s.inner'"),
     ("b binary", "'b'"), ("x interval", "'x'")],
)  # fmt: skip
def test_types_strict_mode_cannot_express_are_refused_naming_the_field(schema, named):
    with pytest.raises(ConfigurationError, match=f"outputSchema: field {named}"):
        schema_text(schema)


def test_struct_type_and_pydantic_model():
    from pyspark.sql.types import ArrayType, LongType, StringType, StructField, StructType

    struct = StructType([StructField("name", StringType()), StructField("ids", ArrayType(LongType()), False)])
    assert (
        str(output_from(schema_text(struct)).arrow_type()) == "struct<name: string, ids: list<element: int64> not null>"
    )
    pydantic = pytest.importorskip("pydantic")

    class Person(pydantic.BaseModel):
        name: str
        age: int | None
        born: dt.date

    shape = output_from(schema_text(Person))
    assert str(shape.arrow_type()) == "struct<name: string not null, age: int64, born: date32[day] not null>"
    assert shape.response_format()["json_schema"]["schema"]["properties"]["age"] == {"type": ["integer", "null"]}


# -- answers -> typed values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "answer", "value"),
    [
        ("d date, t timestamp", {"d": "2024-02-29", "t": "2024-02-29T10:00:00Z"},
         {"d": dt.date(2024, 2, 29), "t": dt.datetime(2024, 2, 29, 10, tzinfo=dt.timezone.utc)}),
        ("m decimal(6,2)", {"m": 12.345}, {"m": decimal.Decimal("12.34")}),
        ("n int", {"n": 3.0}, {"n": 3}),
        ("s string, l array<bigint>", {"s": None, "l": [1, 2]}, {"s": None, "l": [1, 2]}),
    ],
)  # fmt: skip
def test_answers_convert(schema, answer, value):
    assert output_from(schema).parse(json.dumps(answer)) == value


@pytest.mark.parametrize(
    ("schema", "answer", "problem"),
    [
        ("a string", "not json", "not JSON"),
        ("a string, b double", '{"a": "x"}', "missing field(s) b"),
        ("b double", '{"b": "high"}', "$.b: expected a number"),
        ("n int NOT NULL", '{"n": null}', "$.n is null"),
        ("n int", '{"n": 1.5}', "$.n: expected a integer"),
        ("n tinyint", '{"n": 300}', "8-bit"),
        ("m decimal(3,1)", '{"m": 12345}', "decimal(3,1)"),
        ("d date", '{"d": "yesterday"}', "not an ISO date"),
        ("s struct<l: array<boolean>>", '{"s": {"l": [true, 1]}}', "$.s.l[1]: expected a boolean"),
        ("f boolean", '{"f": "true"}', "$.f"),
        ('{"type": "object", "properties": {"l": {"type": "string", "enum": ["a", "b"]}}}', '{"l": "c"}',
         "'c' is not one of ['a', 'b']"),
    ],
)  # fmt: skip
def test_answers_that_do_not_fit_say_where(schema, answer, problem):
    with pytest.raises(MisfitError) as caught:
        output_from(schema).parse(answer)
    assert problem in str(caught.value)


# -- templates ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "row", "rendered"),
    [
        ("Summarise {title} in {lang}", {"title": "T", "lang": "fr"}, "Summarise T in fr"),
        ("{{literal}} {a}", {"a": 1}, "{literal} 1"),
        ("{s.inner.x}!", {"s": {"inner": {"x": "deep"}}}, "deep!"),
        ("{dotted.name}", {"dotted.name": "whole"}, "whole"),
        ("{xs}", {"xs": ["a", "b"]}, '["a", "b"]'),
    ],
)
def test_templates_render(text, row, rendered):
    assert Template.parse(text).render(row) == rendered


def test_template_nulls_and_bad_templates():
    from spark_aoai._core.contract import InvalidInputError

    with pytest.raises(InvalidInputError, match=r"\{b\} is null"):
        Template.parse("{a} {b}").render({"a": "x", "b": None})
    assert Template.parse("{a} {b}").render({"a": "x", "b": None}, null_placeholder="-") == "x -"
    for bad in ("a {", "a } b", "{x:>3}", "{}"):
        with pytest.raises(ConfigurationError, match="promptTemplate"):
            Template.parse(bad)


# -- over Spark, against the emulator ----------------------------------------------------------------------


def expected(schema: str, prompt: str, system: str | None = None):
    """What the emulator answers for ``prompt`` under ``schema``, converted as the client converts it."""
    output = output_from(schema)
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    value = value_for_schema(output.shape.json_schema(), chat_reply(messages), prompt=prompt)
    return output.parse(json.dumps(value))


def stage(endpoint, **kwargs):
    from spark_aoai import ChatCompletion

    return ChatCompletion(deploymentName="gpt-4o", endpoint=endpoint, apiKey="k", **kwargs)


def test_nested_output_schema_gives_typed_columns_with_each_rows_value(spark, shared_emulator):

    shared_emulator.configure(faults=Faults())
    rows = [(i, f"review number {i} " + "x" * i) for i in range(40)]
    df = spark.createDataFrame(rows, "id int, review string").repartition(2)
    out = stage(shared_emulator.endpoint, promptCol="review", outputSchema=NESTED).transform(df)
    assert out.columns == ["id", "review", "response", "error"]
    assert out.schema["response"].dataType.simpleString() == (
        "struct<sentiment:string,score:double,count:bigint,small:int,ok:boolean,price:decimal(8,2),"
        "topics:array<string>,who:struct<name:string,tags:array<struct<k:string,v:double>>>>"
    )
    got = {r.id: r for r in out.collect()}
    assert len(got) == 40
    for i, review in rows:
        assert got[i].error is None
        assert got[i].response.asDict(recursive=True) == expected(NESTED, review)


def test_template_over_columns_and_struct_fields(spark, shared_emulator):
    shared_emulator.configure(faults=Faults())
    df = spark.createDataFrame(
        [(1, "Cats", "fr", {"body": "purr"}), (2, "Dogs", None, {"body": "woof"})],
        "id int, title string, lang string, doc struct<body:string>",
    )
    chat = stage(shared_emulator.endpoint, promptTemplate="Summarise {title} in {lang}: {doc.body} {{ok}}",
                 systemPrompt="Write {lang}.")  # fmt: skip
    got = {r.id: r for r in chat.transform(df).collect()}
    prompt, system = "Summarise Cats in fr: purr {ok}", "Write fr."
    assert got[1].response == chat_reply([{"role": "system", "content": system}, {"role": "user", "content": prompt}])
    assert got[2].response is None and got[2].error.code == "invalid_input" and "{lang}" in got[2].error.message
    filled = chat.copy().setParams(nullPlaceholder="?").transform(df).where("id = 2").first()
    assert filled.response == "Emulated answer to: Summarise Dogs in ?: woof {ok}"


def test_template_errors_are_raised_on_the_driver(spark, shared_emulator):
    df = spark.createDataFrame([("a", {"x": 1})], "title string, s struct<x:int>")
    with pytest.raises(ConfigurationError, match=r"\{missing\} names no column"):
        stage(shared_emulator.endpoint, promptTemplate="{title} {missing}").transform(df)
    with pytest.raises(ConfigurationError, match=r"without a field 'y'"):
        stage(shared_emulator.endpoint, promptTemplate="{s.y}").transform(df)
    with pytest.raises(ConfigurationError, match=r"exactly one of promptCol and messagesCol \(or promptTemplate\)"):
        stage(shared_emulator.endpoint, promptTemplate="{title}", promptCol="title").transform(df)
    with pytest.raises(ConfigurationError, match="outputSchema or responseFormat"):
        stage(shared_emulator.endpoint, promptCol="title", outputSchema="a string",
              responseFormat={"type": "json_object"}).transform(df)  # fmt: skip
    with pytest.raises(ConfigurationError, match="field 'm'"):
        stage(shared_emulator.endpoint, promptCol="title", outputSchema="m map<string,int>")


def bad_answers(emulator, rate: float = 0.2) -> str:
    """The emulator's bad-structured-answer fault (not JSON, a missing field, a value of the wrong type)."""
    emulator.configure(faults=Faults(bad_structured_rate=rate))
    return emulator.endpoint


def test_bad_answers_are_re_asked_then_invalid_output_never_a_wrong_value(spark, emulator):
    rows = [(i, f"ticket {i}: the app crashes on screen {i % 7}") for i in range(200)]
    df = spark.createDataFrame(rows, "id int, text string").repartition(2)
    schema = "severity string, score double, steps array<string>, meta struct<count: bigint, urgent: boolean>"
    endpoint = bad_answers(emulator)
    got = {r.id: r for r in stage(endpoint, promptCol="text", outputSchema=schema, usageCol="usage")
           .transform(df).collect()}  # fmt: skip
    sent = emulator.stats(inputs=False)["requests"]["chat 200"]
    invalid = [r for r in got.values() if r.error is not None]
    assert len(got) == 200
    for i, text in rows:
        row = got[i]
        if row.error is None:
            assert row.response.asDict(recursive=True) == expected(schema, text)
        else:
            assert row.response is None and row.error.code == "invalid_output" and row.error.status == 200
            assert row.error.attempts == 2 and "after 1 re-ask(s)" in row.error.message
    reasked = sent - 200
    assert 20 <= reasked <= 60  # about 20% of the first answers did not fit and were asked again
    assert 0 < len(invalid) < reasked / 2  # most of those recovered; the rest are invalid_output
    assert all(r.usage.total_tokens > 0 for r in got.values() if r.error is None)


def test_output_retries_zero_marks_at_once(spark, emulator):
    df = spark.createDataFrame([(i, f"row {i}") for i in range(60)], "id int, text string")
    endpoint = bad_answers(emulator)
    rows = stage(endpoint, promptCol="text", outputSchema="a string, b double", outputRetries=0).transform(df).collect()
    assert emulator.stats(inputs=False)["requests"]["chat 200"] == 60
    bad = [r for r in rows if r.error is not None]
    assert bad and all(r.error.code == "invalid_output" and "after 0 re-ask(s)" in r.error.message for r in bad)
    assert all(len(r.error.message) <= 700 for r in bad)


def test_chat_udf_with_template_and_schema(spark, shared_emulator):
    from pyspark.sql import functions as F

    from spark_aoai import chat_udf

    shared_emulator.configure(faults=Faults())
    ask = chat_udf(deploymentName="gpt-4o", endpoint=shared_emulator.endpoint, apiKey="k",
                   promptTemplate="{title}: {lang}", outputSchema="n bigint, words array<string>")  # fmt: skip
    df = spark.createDataFrame([(1, "Cats", "fr"), (2, "Dogs", None)], "id int, title string, lang string")
    got = {r.id: r.out for r in df.select("id", ask(F.struct("title", "lang")).alias("out")).collect()}
    assert got[1].response.asDict() == expected("n bigint, words array<string>", "Cats: fr")
    assert got[2].response is None and got[2].error.code == "invalid_input"


def test_estimate_reads_a_templates_columns(spark, shared_emulator):
    pytest.importorskip("tiktoken")
    df = spark.createDataFrame([("Cats", "fr"), ("Dogs", None)], "title string, lang string")
    counts = stage(shared_emulator.endpoint, promptTemplate="{title} in {lang}").estimate(df)
    assert counts["rows"] == 2 and counts["invalid_rows"] == 1 and counts["requests"] == 1
