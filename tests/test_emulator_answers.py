"""The emulator's answers make a convincing demo and stay pure functions of the request."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import numpy as np
import pytest
import requests

from spark_aoai.emulator import chat_reply, embed_text, embed_texts, value_for_schema
from spark_aoai.emulator._labels import pick_label, sentiment
from spark_aoai.emulator._model import structured_reply

REVIEW = {
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
        "stars": {"type": "integer", "minimum": 1, "maximum": 5},
        "days_late": {"type": "number"},
        "is_complaint": {"type": "boolean"},
        "summary": {"type": "string"},
    },
    "required": ["sentiment", "stars", "days_late", "is_complaint", "summary"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("prompt", "label"),
    [
        ("Arrived broken, and support never answered", "negative"),
        ("Love it, works great", "positive"),
        ("The blender is powerful and easy to clean. Love it!", "positive"),
        ("It does the job. Nothing special.", "neutral"),
        ("Terrible: the screen cracked on day one, I want a refund", "negative"),
    ],
)
def test_sentiment_labels_over_http(emulator, prompt, label):
    messages = [{"role": "system", "content": "Classify the review."}, {"role": "user", "content": prompt}]
    response_format = {"type": "json_schema", "json_schema": {"name": "review", "schema": REVIEW, "strict": True}}
    url = f"{emulator.endpoint}/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    body = {"messages": messages, "response_format": response_format}
    content = requests.post(url, json=body, timeout=10).json()["choices"][0]["message"]["content"]
    answer = json.loads(content)
    jsonschema.validate(answer, REVIEW)
    assert answer["sentiment"] == label
    assert content == structured_reply(messages, response_format)  # a pure function: tests can compute it
    assert answer["is_complaint"] == (label == "negative")


@pytest.mark.parametrize(
    ("labels", "prompt", "expected"),
    [
        (["bug", "feature request", "question"], "The app crashes: a bug in the export", "bug"),
        (["bug", "feature request", "question"], "Please add a dark mode feature", "feature request"),
        (["billing", "shipping", "other"], "Where is my shipping confirmation?", "shipping"),
        (["a", "b"], "classify me", "a"),  # nothing matches: the first label
        (["good", "bad"], "it was not what I hoped, a bad buy", "bad"),
        ([1, 2, 3], "anything", 1),
    ],
)
def test_pick_label(labels, prompt, expected):
    assert pick_label(labels, prompt) == expected


@pytest.mark.parametrize(
    ("schema", "prompt", "expected"),
    [
        ({"type": "integer"}, "The parcel was 3 days late", 3),
        ({"type": "number"}, "It costs 12.5 euros", 12.5),
        ({"type": "integer"}, "no digits in here at all", 6),  # the word count
        ({"type": "integer", "minimum": 1, "maximum": 5}, "I give it 9 out of 10", 5),
        ({"type": "integer", "exclusiveMinimum": 0}, "0 items", 1),
        ({"type": "number", "minimum": 0}, "-4 degrees", 0.0),
    ],
)
def test_numbers_come_from_the_prompt(schema, prompt, expected):
    assert value_for_schema(schema, "unused", prompt=prompt) == expected


def test_sentiment_lexicon():
    assert sentiment("Arrived broken, and support never answered") < 0 < sentiment("Love it, works great")
    assert sentiment("It does the job.") == 0


def test_plain_text_answers_are_unchanged(emulator):
    messages = [{"role": "user", "content": "Love it, works great"}]
    url = f"{emulator.endpoint}/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    content = requests.post(url, json={"messages": messages}, timeout=10).json()["choices"][0]["message"]["content"]
    assert content == chat_reply(messages) == "Emulated answer to: Love it, works great"


@pytest.mark.parametrize("dimensions", [1536, 3072, 256, 255])
def test_embeddings_are_dense_unit_vectors(dimensions):
    vectors = embed_texts(["the cat sat on the mat", "a cat sat on a mat", "quarterly revenue grew"], dimensions)
    assert vectors.dtype == np.float32 and vectors.shape == (3, dimensions)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (np.abs(vectors) > 1e-7).mean() > 0.95  # every component carries signal, not a few hashed bins
    assert vectors[0] @ vectors[1] > 0.4 > abs(float(vectors[0] @ vectors[2]))


def test_texts_sharing_words_are_closer():
    query, *docs = embed_texts(
        [
            "I forgot my password",
            "How do I reset my password?",
            "Shipping to Canada takes a week",
            "Our quarterly revenue grew in Europe",
        ],
        1536,
    )
    similarities = [float(query @ doc) for doc in docs]
    assert similarities[0] == max(similarities) and similarities[0] > 0.3 > max(similarities[1:])


@pytest.mark.parametrize("dimensions", [1536, 3072, 256, 255])
def test_a_vector_does_not_depend_on_its_batch(dimensions):
    texts = [f"row {i}: {'word ' * (i % 9)}and more" for i in range(67)]
    batch = embed_texts(texts, dimensions)
    for size in (1, 2, 3, 5, 8, 17, 67):
        part = embed_texts(texts[:size], dimensions)
        np.testing.assert_array_equal(part, batch[:size])
    for i in (0, 13, 66):
        np.testing.assert_array_equal(embed_text(texts[i], dimensions), batch[i])


def test_vectors_are_the_same_in_another_process():
    script = (
        "from spark_aoai.emulator import embed_text\n"
        "import hashlib\n"
        "print(hashlib.sha256(embed_text('same everywhere', 1536).tobytes()).hexdigest())\n"
    )
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.strip()
    import hashlib

    assert other == hashlib.sha256(embed_text("same everywhere", 1536).tobytes()).hexdigest()
