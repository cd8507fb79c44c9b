"""Images and PDFs (imageCol, fileCol): pure parts and checks, then local Spark against the emulator."""

from __future__ import annotations

import base64

import pytest
from pyspark.sql import functions as F

from spark_aoai import ChatCompletion, ConfigurationError, ai
from spark_aoai._core.contract import InvalidInputError
from spark_aoai._wire.media import Attachments, Media, file_data, image_url, responses_content, sniff_image
from spark_aoai.emulator import Emulator
from spark_aoai.emulator._media import short_hash
from spark_aoai.emulator._model import chat_reply
from spark_aoai.functions import chat_udf
from tests.images import MAKERS, MEDIA_TYPES, pdf, png

APIS = ["chat_completions", "responses"]
PROMPT = "Describe this image."


def expected(prompt: str, *attachments: str) -> str:
    """The emulator's answer to a prompt with these attachment descriptions, from its own pure function."""
    return chat_reply([{"role": "user", "content": prompt}]) + "".join(f" {a}" for a in attachments)


def named(media_type: str, data: bytes, filename: str | None = None) -> str:
    return f"[{media_type}{f' {filename}' if filename else ''} {short_hash(data)}]"


# -- pure ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_the_generated_images_are_sniffed(kind):
    assert sniff_image(MAKERS[kind](1)) == MEDIA_TYPES[kind]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (b"hello world", "not PNG, JPEG, GIF or WebP"),
        (pdf(1), "not PNG, JPEG, GIF or WebP"),
        (png(1, size=40, noise=True), "over maxInputBytes"),
        ("http://example.com/a.png", "must start with https:// or data:"),
        ("data:text/plain;base64,aGVsbG8=", "text/plain"),
        ("data:image/png;base64," + base64.b64encode(b"GIF89a....").decode(), "with image/gif bytes"),
        ("data:image/png,raw", "not base64"),
        (12, "bytes or a URL string"),
    ],
)
def test_images_that_cannot_be_sent_are_invalid_input(value, problem):
    with pytest.raises(InvalidInputError, match=problem):
        image_url(value, max_bytes=1000)


def test_urls_and_data_urls_pass_as_they_are():
    assert image_url("https://example.com/cat.png", 10) == "https://example.com/cat.png"
    url = "data:image/png;base64," + base64.b64encode(png(2)).decode()
    assert image_url(url, 1000) == url and image_url(png(2), 1000) == url


def test_a_file_must_be_a_pdf_within_the_limit():
    assert file_data(pdf(1), 10_000).startswith("data:application/pdf;base64,JVBERi0")
    with pytest.raises(InvalidInputError, match="not a PDF"):
        file_data(png(1), 10_000)
    with pytest.raises(InvalidInputError, match="over maxInputBytes"):
        file_data(pdf(1), 10)


def test_parts_follow_the_last_user_message_in_each_api():
    attachments = Attachments(image="https://x/a.png", file="data:application/pdf;base64,JVBERi0=")
    messages = attachments.attach([{"role": "system", "content": "s"}, {"role": "user", "content": "q"}])
    assert messages[0] == {"role": "system", "content": "s"}
    assert messages[1]["content"] == [
        {"type": "text", "text": "q"},
        {"type": "image_url", "image_url": {"url": "https://x/a.png"}},
        {"type": "file", "file": {"filename": "document.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
    ]
    assert responses_content(messages[1]["content"]) == [
        {"type": "input_text", "text": "q"},
        {"type": "input_image", "image_url": "https://x/a.png", "detail": "auto"},
        {"type": "input_file", "filename": "document.pdf", "file_data": "data:application/pdf;base64,JVBERi0="},
    ]
    assert Attachments().attach(messages[:1]) == messages[:1]


def test_a_null_image_sends_the_text_alone():
    text, attachments = Media("q", "img").split({"q": "hello", "img": None})
    assert text == "hello" and attachments.parts() == []


def test_the_parts_have_the_openai_sdk_shapes():
    from openai.types.chat import ChatCompletionContentPartParam
    from openai.types.responses import ResponseInputContentParam
    from pydantic import TypeAdapter

    attachments = Attachments(image="https://x/a.png", file="data:application/pdf;base64,JVBERi0=")
    chat = attachments.attach([{"role": "user", "content": "q"}])[0]["content"]
    for part in chat:
        TypeAdapter(ChatCompletionContentPartParam).validate_python(part, strict=True)
    for part in responses_content(chat):
        TypeAdapter(ResponseInputContentParam).validate_python(part, strict=True)


# -- over Spark ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    for index in range(20):
        kind = sorted(MAKERS)[index % 4]
        (folder / f"image_{index:02d}.{kind}").write_bytes(MAKERS[kind](index))
    return folder


@pytest.fixture(scope="module")
def emu():
    with Emulator() as emulator:
        yield emulator


@pytest.mark.parametrize("api", APIS)
def test_a_folder_of_images_read_with_binary_file_gets_one_answer_per_image(spark, emu, image_folder, api):
    emu.reset_stats()
    images = spark.read.format("binaryFile").load(str(image_folder)).withColumn("q", F.lit(PROMPT))
    stage = ChatCompletion(deploymentName="gpt-4o", endpoint=emu.endpoint, promptCol="q", imageCol="content",
                           apiType=api, systemPrompt="You describe images.")  # fmt: skip
    rows = stage.transform(images.repartition(3)).collect()
    assert len(rows) == 20
    for row in rows:
        kind = row.path.rsplit(".", 1)[1]
        assert row.error is None, row.error
        assert row.response == expected(PROMPT, named(MEDIA_TYPES[kind], bytes(row.content)))
    assert len({r.response for r in rows}) == 20  # each answer depends on its own image, and only on it
    assert sum(emu.stats()["requests"].values()) == 20


@pytest.mark.parametrize("api", APIS)
def test_null_oversized_and_non_image_inputs_are_invalid_input_without_a_request(spark, emu, api):
    emu.reset_stats()
    rows = [
        (1, png(1)),
        (2, None),
        (3, png(3, size=40, noise=True)),
        (4, b"plain bytes"),
        (5, pdf(5)),
    ]
    df = spark.createDataFrame(rows, "id int, image binary").withColumn("q", F.concat(F.lit("row "), "id"))
    stage = ChatCompletion(deploymentName="gpt-4o", endpoint=emu.endpoint, promptCol="q", imageCol="image",
                           apiType=api, maxInputBytes=1000)  # fmt: skip
    out = {r.id: r for r in stage.transform(df).collect()}
    assert out[1].response == expected("row 1", named("image/png", png(1)))
    assert out[2].response == expected("row 2")  # a null image: the text alone
    for row_id, problem in ((3, "over maxInputBytes (1000)"), (4, "not PNG, JPEG, GIF or WebP"), (5, "not PNG")):
        assert out[row_id].response is None
        assert out[row_id].error.code == "invalid_input" and problem in out[row_id].error.message
        assert out[row_id].error.status is None
    assert sum(emu.stats()["requests"].values()) == 2


def test_a_null_prompt_with_an_image_is_invalid_input(spark, emu):
    df = spark.createDataFrame([(None, png(1))], "q string, image binary")
    row = ChatCompletion(deploymentName="gpt-4o", endpoint=emu.endpoint, promptCol="q", imageCol="image")
    assert row.transform(df).first().error.code == "invalid_input"


def test_url_strings_are_sent_as_they_are(spark, emu):
    data = "data:image/gif;base64," + base64.b64encode(MAKERS["gif"](4)).decode()
    df = spark.createDataFrame([(1, "https://example.com/cat.png"), (2, data), (3, "ftp://x")], "id int, url string")
    stage = ChatCompletion(deploymentName="gpt-4o", endpoint=emu.endpoint, promptTemplate="Image {id}?", imageCol="url")
    out = {r.id: r for r in stage.transform(df).collect()}
    assert out[1].response == expected("Image 1?", "[https://example.com/cat.png]")
    assert out[2].response == expected("Image 2?", named("image/gif", MAKERS["gif"](4)))
    assert out[3].error.code == "invalid_input"


@pytest.mark.parametrize("api", APIS)
def test_a_pdf_column_is_sent_as_a_file_part(spark, emu, tmp_path, api):
    for index in range(3):
        (tmp_path / f"doc{index}.pdf").write_bytes(pdf(index))
    docs = spark.read.format("binaryFile").load(str(tmp_path)).withColumn("q", F.lit("Summarise it."))
    stage = ChatCompletion(deploymentName="gpt-4o", endpoint=emu.endpoint, promptCol="q", fileCol="content",
                           apiType=api)  # fmt: skip
    rows = stage.transform(docs).collect()
    assert len(rows) == 3
    for row in rows:
        assert row.response == expected("Summarise it.", named("application/pdf", bytes(row.content), "document.pdf"))


def test_an_image_and_a_file_in_one_row(spark, emu):
    df = spark.createDataFrame([("Compare.", png(7), pdf(7))], "q string, image binary, doc binary")
    stage = ChatCompletion(deploymentName="gpt-4o", endpoint=emu.endpoint, promptCol="q", imageCol="image",
                           fileCol="doc")  # fmt: skip
    answer = stage.transform(df).first().response
    assert answer == expected("Compare.", named("image/png", png(7)), named("application/pdf", pdf(7), "document.pdf"))


def test_the_udf_takes_a_struct_of_prompt_and_image(spark, emu, image_folder):
    ask = chat_udf(deploymentName="gpt-4o", endpoint=emu.endpoint, imageCol="image")
    images = spark.read.format("binaryFile").load(str(image_folder)).limit(4)
    asked = ask(F.struct(F.lit(PROMPT).alias("prompt"), F.col("content").alias("image")))
    out = images.select("path", "content", asked.alias("o"))
    for row in out.collect():
        kind = row.path.rsplit(".", 1)[1]
        assert row.o.error is None, row.o.error
        assert row.o.response == expected(PROMPT, named(MEDIA_TYPES[kind], bytes(row.content)))


def test_ai_helpers_take_an_image(spark, emu):
    df = spark.createDataFrame([("a red square", png(2))], "text string, image binary")
    row = ai.summarize("text", imageCol="image", endpoint=emu.endpoint, deploymentName="gpt-4o").transform(df).first()
    assert row.error is None and row.summary == expected("a red square", named("image/png", png(2)))


def test_bad_media_columns_are_refused_before_any_job(spark, emu):
    df = spark.createDataFrame([("q", 1, "x")], "q string, n int, s string")
    for kwargs, problem in (
        ({"imageCol": "n"}, "imageCol: column 'n' is int, not binary or string"),
        ({"fileCol": "s"}, "fileCol: column 's' is string, not binary"),
        ({"imageCol": "missing"}, "imageCol: column 'missing' not found"),
        ({"imageCol": "q"}, "other columns than the prompt's"),
        ({"imageCol": "s", "maxInputBytes": 0}, "maxInputBytes must be at least 1"),
        ({"imageCol": "s", "rowsPerRequest": "auto"}, "rows with imageCol are not packed"),
    ):
        with pytest.raises(ConfigurationError, match=problem):
            ChatCompletion(deploymentName="gpt-4o", endpoint=emu.endpoint, promptCol="q", **kwargs).transform(df)
