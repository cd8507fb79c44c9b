"""Wire formats as pure functions: tables of answers, each parsed into a value, a final error, or a retry."""

from __future__ import annotations

import base64
import math

import numpy as np
import pytest

from spark_aoai._contract import MalformedResponseError
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
