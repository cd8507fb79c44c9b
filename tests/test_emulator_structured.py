"""The emulator's structured answers read plausibly for the prompt: labels by evidence, numbers, ids and dates.

Pure functions of the prompt and the schema, checked without a server: what a first-time reader of an example
sees in each field (``billing`` for "I was charged twice", ``4411`` for "order #4411", an ISO date for a
``format: date`` field) and that the answer still fits the schema the client sends.
"""

from __future__ import annotations

import datetime as dt

import jsonschema
import pytest

from spark_aoai.emulator import value_for_schema
from spark_aoai.emulator._facts import date_for, field_words, id_for, is_id_like, number_for
from spark_aoai.emulator._labels import pick_label, topic_of
from spark_aoai.emulator._model import embed_texts

TICKET_LABELS = ["bug", "feature", "question", "billing"]
SENTIMENTS = ["positive", "negative", "neutral", "mixed"]


@pytest.mark.parametrize(
    ("labels", "prompt", "expected"),
    [
        (TICKET_LABELS, "The app crashes every time I upload a photo from my Pixel 8.", "bug"),
        (TICKET_LABELS, "Could you add a dark mode? My eyes hurt at night.", "feature"),
        (TICKET_LABELS, "How do I export my invoices to CSV for 2024?", "question"),
        (TICKET_LABELS, "I was charged twice this month, order #4411. Please refund!", "billing"),
        (TICKET_LABELS, "Thanks, all good.", "bug"),  # no evidence for any: the first label
        (["other", "billing"], "Hello there", "other"),  # a catch-all label wins when nothing else speaks
        (["billing", "shipping", "account"], "My parcel never arrived, where is the courier?", "shipping"),
        (["billing", "shipping", "account"], "I am locked out after a password reset", "account"),
        (SENTIMENTS, "Love the screen, but the battery is terrible.", "mixed"),
        (SENTIMENTS, "The app crashes on start.", "negative"),
        (SENTIMENTS, "It does the job.", "neutral"),
        (SENTIMENTS, "Works great, thanks!", "positive"),
        (["positive", "negative", None], "Works great", "positive"),  # a nullable enum's null is no label
        ([None], "anything", None),
    ],
)
def test_labels_are_picked_by_evidence(labels, prompt, expected):
    assert pick_label(labels, prompt) == expected


@pytest.mark.parametrize(
    ("name", "description", "keys", "id_like"),
    [
        ("order_id", "an order number", ["order"], True),
        ("invoiceNumber", None, ["invoice"], True),
        ("ticket", "the ticket reference", ["ticket"], True),
        ("product_area", "the part of the product", ["product", "area", "part"], False),
        ("days_late", None, ["days", "late"], False),
    ],
)
def test_a_fields_words_and_whether_it_is_an_id(name, description, keys, id_like):
    assert field_words(name, description) == keys and is_id_like(name, description) == id_like


@pytest.mark.parametrize(
    ("text", "keys", "expected"),
    [
        ("I was charged twice this month, order #4411. Please refund!", ["order"], "4411"),
        ("Order number: A-7730, invoice INV-2024-118", ["invoice"], "INV-2024-118"),
        ("Order number: A-7730, invoice INV-2024-118", ["order"], "A-7730"),
        ("Ticket #982 again", ["order"], "982"),  # no field word: a #-number stands in
        ("The app crashes on my Pixel 8 since 2024", ["order"], None),  # a model number and a year are no ids
    ],
)
def test_ids_come_from_the_text(text, keys, expected):
    assert id_for(text, keys) == expected


@pytest.mark.parametrize(
    ("text", "keys", "expected"),
    [
        ("Pixel 8, and the parcel was 3 days late", ["days", "late"], 3.0),
        ("Paid 1,299.50 EUR for 2 chairs", ["chairs"], 2.0),
        ("Paid 1,299.50 EUR for 2 chairs", ["paid"], 1299.5),
        ("It is -4 degrees", ["temperature"], -4.0),
        ("no numbers", ["count"], None),
        ("Order #5521 of 3 items for $42.50", ["amount"], 42.5),  # a field about money: the sum by its currency
        ("Order #5521 placed 2024-03-01, 3 items", ["weight"], 3.0),  # not an id's or a date's digits
        ("#5521", ["weight"], None),
    ],
)
def test_numbers_come_from_the_text_nearest_their_field(text, keys, expected):
    assert number_for(text, keys) == expected


@pytest.mark.parametrize(
    ("text", "with_time", "expected"),
    [
        ("Delivered 2024-03-09.", False, "2024-03-09"),
        ("Delivered on March 9, 2024.", False, "2024-03-09"),
        ("Delivered on 9th Mar 2024", False, "2024-03-09"),
        ("Delivered 03/09/2024", False, "2024-03-09"),
        ("Delivered 31/12/2024", False, "2024-12-31"),  # not a month/day: day/month
        ("Delivered March 9, 2024 at 2:30 pm", True, "2024-03-09T14:30:00Z"),
        ("Delivered 2024-03-09T08:15:00Z", True, "2024-03-09T08:15:00Z"),
        ("Delivered 2024-03-09", True, "2024-03-09T00:00:00Z"),
        ("Delivered 2024-02-30", False, None),  # not a date
        ("How do I export my invoices for 2024?", False, None),  # a year is not a day
    ],
)
def test_dates_are_answered_in_iso_form(text, with_time, expected):
    assert date_for(text, ["delivery"], with_time) == expected


def test_the_date_nearest_the_fields_name_is_taken():
    text = "Ordered on 2024-03-01, shipped 2024-03-04, delivered 2024-03-09"
    assert [date_for(text, keys, False) for keys in (["order"], ["ship"], ["delivery"])] == [
        "2024-03-01",
        "2024-03-04",
        "2024-03-09",
    ]


EXTRACTION = {
    "type": "object",
    "properties": {
        "order_id": {"type": ["string", "null"], "description": "an order number"},
        "ordered_on": {"type": ["string", "null"], "format": "date"},
        "delivered_at": {"type": ["string", "null"], "format": "date-time"},
        "amount": {"type": ["number", "null"]},
        "items": {"type": ["integer", "null"]},
        "product": {"type": ["string", "null"]},
    },
    "required": ["order_id", "ordered_on", "delivered_at", "amount", "items", "product"],
    "additionalProperties": False,
}


def test_an_extraction_reads_each_field_from_the_text():
    text = "Order #5521 of 3 items placed on March 1, 2024 for 42.50 EUR, delivered 2024-03-04 at 09:30."
    answer = value_for_schema(EXTRACTION, "the answer", prompt=text)
    jsonschema.validate(answer, EXTRACTION)
    assert answer == {
        "order_id": "5521",
        "ordered_on": "2024-03-01",
        "delivered_at": "2024-03-04T09:30:00Z",
        "amount": 42.5,
        "items": 3,
        "product": "the answer",
    }


def test_a_nullable_field_the_text_does_not_give_is_null_and_a_required_one_is_a_stand_in():
    answer = value_for_schema(EXTRACTION, "the answer", prompt="The app crashes on start.")
    assert {k: answer[k] for k in ("order_id", "ordered_on", "delivered_at", "amount", "items")} == dict.fromkeys(
        ("order_id", "ordered_on", "delivered_at", "amount", "items")
    )
    required = {"type": "object", "properties": {"due": {"type": "string", "format": "date"}}, "required": ["due"]}
    due = value_for_schema(required, "x", prompt="The app crashes on start.")["due"]
    assert dt.date.fromisoformat(due).year == 2024  # an ISO date, the same for the same prompt
    assert value_for_schema(required, "x", prompt="The app crashes on start.")["due"] == due


@pytest.mark.parametrize(
    ("prompt", "stars"), [("Love it, works great", 5), ("Arrived broken, never again", 1), ("It is a chair", 3)]
)
def test_a_bounded_number_the_text_does_not_give_follows_the_sentiment(prompt, stars):
    assert value_for_schema({"type": "integer", "minimum": 1, "maximum": 5}, "", prompt=prompt) == stars


def test_texts_on_one_topic_embed_close_without_sharing_a_word():
    assert (topic_of("passwords"), topic_of("quarterly"), topic_of("cat")) == ("account", "finance", None)
    login, two_factor, revenue = embed_texts(
        ["How to reset a forgotten account password", "Setting up two-factor authentication",
         "Annual report: revenue by region"], 1536
    )  # fmt: skip
    assert float(login @ two_factor) > 0.15 > 0.1 > abs(float(login @ revenue))
