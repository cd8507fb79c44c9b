"""Wire formats as pure functions: tables of answers, each parsed into a value, a final error, or a retry."""

from __future__ import annotations

import base64
import math

import numpy as np
import pytest

from spark_aoai._core.contract import MalformedResponseError
from spark_aoai._wire import chat, embeddings


def _chat_body(message, finish_reason="stop", usage=None):
    return {"choices": [{"index": 0, "finish_reason": finish_reason, "message": message}], "usage": usage}


@pytest.mark.parametrize(
    ("body", "text", "code"),
    [
        (_chat_body({"role": "assistant", "content": "hi"}), "hi", None),
        (_chat_body({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}), "ab", None),
        (_chat_body({"content": None}, "content_filter"), "", None),
        (_chat_body({"content": None, "refusal": "no"}), None, "refusal"),
        (
            _chat_body(
                {"content": None, "tool_calls": [{"type": "function", "function": {"name": "f"}}]}, "tool_calls"
            ),
            None,
            "tool_call",
        ),
        (_chat_body({"content": None}, "length"), None, "incomplete"),
        # a reasoning model whose thinking used the whole budget: content "" (Azure's shape), not an answer
        (_chat_body({"role": "assistant", "content": ""}, "length"), None, "incomplete"),
        (_chat_body({"role": "assistant", "content": " \n"}, "length"), None, "incomplete"),
        (_chat_body({"role": "assistant", "content": "cut"}, "length"), "cut", None),
        (_chat_body({"role": "assistant", "content": ""}, "content_filter"), "", None),
    ],
)
def test_chat_answers(body, text, code):
    answer = chat.parse_answer(body)
    assert answer.text == text
    assert (answer.error.code if answer.error else None) == code
    if code:
        assert answer.error.status == 200


@pytest.mark.parametrize(
    "body",
    [
        None,
        "text",
        {},
        {"choices": []},
        {"choices": ["x"]},
        {"choices": [{"message": "a string"}]},
        _chat_body({"content": 42}),
        _chat_body({"content": [{"type": "text"}]}),
        _chat_body({"content": ["raw"]}),
        _chat_body({"content": None}),
    ],
)
def test_chat_bodies_that_are_retried(body):
    with pytest.raises(MalformedResponseError):
        chat.parse_answer(body)


def test_chat_usage_reads_cached_and_reasoning_tokens_and_ignores_junk():
    usage = chat.parse_usage(
        {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 3},
        }
    )
    assert (usage.prompt_tokens, usage.cached_tokens, usage.reasoning_tokens) == (10, 4, 3)
    junk = chat.parse_usage({"prompt_tokens": "ten", "completion_tokens": -1, "total_tokens": True})
    assert (junk.prompt_tokens, junk.completion_tokens, junk.total_tokens) == (None, None, None)


def _b64(values) -> str:
    return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode()


def _emb_body(*vectors):
    return {"data": [{"index": i, "embedding": v} for i, v in enumerate(vectors)], "usage": {"prompt_tokens": 2}}


def test_embeddings_decode_and_check():
    vectors, usage = embeddings.parse_vectors(_emb_body(_b64([1, 2]), [3.0, 4.0]), 2, None)
    assert [v.tolist() for v in vectors] == [[1, 2], [3, 4]] and usage.prompt_tokens == 2


@pytest.mark.parametrize(
    ("body", "dimensions", "unusable"),
    [
        (_emb_body(_b64([1, 2]), _b64([1, 2, 3]), _b64([4, 5])), None, [1]),  # the odd length out
        (_emb_body(_b64([1, 2])), 3, [0]),  # not the length asked for (or seen before in the task)
        (_emb_body(_b64([1, math.nan]), _b64([1, 2])), None, [0]),
        (_emb_body([1.0, math.inf]), None, [0]),
        (_emb_body(_b64([])), None, [0]),
        (_emb_body("not base64!"), None, [0]),
        (_emb_body(["a", "b"]), None, [0]),
    ],
)
def test_unusable_embeddings_are_told_apart_from_the_good_ones(body, dimensions, unusable):
    vectors, _ = embeddings.parse_vectors(body, len(body["data"]), dimensions)
    assert [i for i, v in enumerate(vectors) if isinstance(v, MalformedResponseError)] == unusable


@pytest.mark.parametrize(
    ("body", "count"),
    [
        (_emb_body(_b64([1])), 2),
        ({"data": [{"index": 0, "embedding": _b64([1])}, {"index": 0, "embedding": _b64([1])}]}, 2),
        ({"data": "x"}, 1),
        ([], 1),
    ],
)
def test_embedding_responses_of_the_wrong_shape_are_retried(body, count):
    with pytest.raises(MalformedResponseError):
        embeddings.parse_vectors(body, count, None)


def test_responses_request_from_chat_messages_and_options():
    from spark_aoai._wire import responses

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    options = {
        "max_completion_tokens": 80,
        "temperature": 0.5,
        "reasoning_effort": "low",
        "verbosity": "low",
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}},
    }
    body = responses.build_body(messages, options, "gpt-5-mini")
    assert body == {
        "input": [{"role": "user", "content": "Hi"}],
        "instructions": "Be brief.",
        "max_output_tokens": 80,
        "temperature": 0.5,
        "reasoning": {"effort": "low"},
        "text": {"format": {"type": "json_schema", "name": "a", "schema": {"type": "object"}}, "verbosity": "low"},
        "model": "gpt-5-mini",
    }


def _response(status="completed", content=None, reason=None, extra_items=()):
    items = [*extra_items]
    if content is not None:
        items.append({"type": "message", "role": "assistant", "content": content})
    body = {"status": status, "output": items, "usage": {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12,
            "output_tokens_details": {"reasoning_tokens": 3}}}  # fmt: skip
    if reason:
        body["incomplete_details"] = {"reason": reason}
    return body


@pytest.mark.parametrize(
    ("body", "text", "code", "finish"),
    [
        (
            _response(content=[{"type": "output_text", "text": "a"}, {"type": "output_text", "text": "b"}]),
            "ab",
            None,
            "stop",
        ),
        (_response("incomplete", [{"type": "output_text", "text": "cut"}], "max_output_tokens"), "cut", None, "length"),
        (_response("incomplete", [], "max_output_tokens"), None, "incomplete", "length"),
        (
            _response("incomplete", [{"type": "output_text", "text": ""}], "max_output_tokens"),
            None,
            "incomplete",
            "length",
        ),
        (_response("incomplete", None, "content_filter"), "", None, "content_filter"),
        (_response(content=[{"type": "refusal", "refusal": "no"}]), None, "refusal", "stop"),
        (_response(extra_items=[{"type": "function_call", "name": "f"}]), None, "tool_call", "stop"),
        (
            _response(
                extra_items=[{"type": "reasoning", "summary": []}], content=[{"type": "output_text", "text": "x"}]
            ),
            "x",
            None,
            "stop",
        ),
    ],
)
def test_responses_answers(body, text, code, finish):
    from spark_aoai._wire import responses

    answer = responses.parse_answer(body)
    assert (answer.text, answer.error.code if answer.error else None, answer.finish_reason) == (text, code, finish)
    assert answer.usage.reasoning_tokens == 3 and answer.usage.prompt_tokens == 5


@pytest.mark.parametrize(
    "body", [None, {}, {"output": "x"}, {"output": ["x"]}, _response(content=[{"type": "output_text"}])]
)
def test_responses_bodies_that_are_retried(body):
    from spark_aoai._wire import responses

    with pytest.raises(MalformedResponseError):
        responses.parse_answer(body)


def test_the_responses_route_on_each_endpoint_style():
    from spark_aoai._client.config import resolve_endpoint
    from spark_aoai._wire import responses

    assert resolve_endpoint("https://r.openai.azure.com").url(responses.ROUTE, "d") == (
        "https://r.openai.azure.com/openai/v1/responses"
    )
    assert resolve_endpoint("https://r.openai.azure.com", api_version="2025-04-01-preview").url(
        responses.ROUTE, "d"
    ) == ("https://r.openai.azure.com/openai/responses?api-version=2025-04-01-preview")
    assert resolve_endpoint("http://h:8000/v1").url(responses.ROUTE, "d") == "http://h:8000/v1/responses"
    assert resolve_endpoint("https://r.openai.azure.com").model_for(responses.ROUTE, "d") == "d"
