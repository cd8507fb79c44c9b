"""Structured answers: JSON that fits a schema and reads plausibly for the prompt, as a pure function of it.

An ``enum`` picks the label with the most evidence in the prompt (:mod:`~spark_aoai.emulator._labels`: its own
words, a small lexicon of synonyms and sentiment; "Arrived broken, and support never answered" is ``negative``,
"I was charged twice, please refund" is ``billing``). Numbers, identifiers and dates are read from the prompt,
the one nearest the field's name first (:mod:`~spark_aoai.emulator._facts`: ``order_id`` is ``4411`` in "order
#4411"; a ``format: date`` field is the ISO date the text gives); a nullable field the text does not give is
null. A boolean says whether the prompt matches the field's name (or its polarity); any other string is the
plain-text answer. The same request always gets the same JSON, so tests can compute it.
"""

from __future__ import annotations

import datetime as dt
import zlib
from typing import Any

from spark_aoai.emulator._facts import date_for, field_words, id_for, is_id_like, number_for
from spark_aoai.emulator._labels import NEGATIVE_LABELS, NEGATIVE_WORDS, POSITIVE_LABELS, pick_label, sentiment, words
from spark_aoai.emulator._semantic import numbers, verdict

# A stand-in date for a field that must have one when the text gives none: a day of this year, by the prompt.
STAND_IN_YEAR = 2024


def _number(schema: dict[str, Any], prompt: str, integer: bool, keys: list[str], nullable: bool) -> float | None:
    """The number the prompt gives for the field, within the schema's bounds.

    With none: null when nullable; else, between two bounds (a rating), the top for a positive prompt, the
    bottom for a negative one, the middle otherwise; else the prompt's word count.
    """
    found = number_for(prompt, keys)
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if low is not None and "exclusiveMinimum" in schema and "minimum" not in schema:
        low = float(low) + (1 if integer else 1e-6)
    if high is not None and "exclusiveMaximum" in schema and "maximum" not in schema:
        high = float(high) - (1 if integer else 1e-6)
    if found is None and nullable:
        return None
    if found is None and low is not None and high is not None:
        mood = sentiment(prompt)
        value = float(high) if mood > 0 else float(low) if mood < 0 else (float(low) + float(high)) / 2
    else:
        value = found if found is not None else float(len(words(prompt)))
    if low is not None:
        value = max(value, float(low))
    if high is not None:
        value = min(value, float(high))
    return int(value) if integer else value


def _date(prompt: str, keys: list[str], with_time: bool, nullable: bool) -> str | None:
    """The ISO date (or date-time) the prompt gives; a stand-in day of :data:`STAND_IN_YEAR` when one is needed."""
    found = date_for(prompt, keys, with_time)
    if found is not None or nullable:
        return found
    day = dt.date(STAND_IN_YEAR, 1, 1) + dt.timedelta(days=zlib.crc32(prompt.encode()) % 365)
    return f"{day.isoformat()}T00:00:00Z" if with_time else day.isoformat()


def _boolean(name: str, prompt: str) -> bool:
    semantic = verdict(prompt)  # a semantic filter's or join's check (``_semantic``)
    if semantic is not None:
        return semantic
    name_words = set(words(name.replace("_", " "))) - {"is", "has", "was", "contains"}
    if name_words & POSITIVE_LABELS:
        return sentiment(prompt) > 0
    if name_words & (NEGATIVE_LABELS | NEGATIVE_WORDS):
        return sentiment(prompt) < 0
    if name_words & set(words(prompt)):
        return True
    return zlib.crc32(prompt.encode()) % 2 == 0


def value_for_schema(
    schema: Any, seed_text: str, defs: dict[str, Any] | None = None, prompt: str | None = None, name: str = ""
) -> Any:
    """A value that validates against a JSON schema (the subset structured outputs allow).

    Plain strings are ``seed_text``; labels, numbers, ids, dates and booleans are read from ``prompt``
    (``seed_text`` if None), for the property called ``name``.
    """
    prompt = seed_text if prompt is None else prompt
    if not isinstance(schema, dict):
        return seed_text
    defs = defs if defs is not None else {**schema.get("$defs", {}), **schema.get("definitions", {})}
    if "$ref" in schema:
        ref = str(schema["$ref"]).rsplit("/", 1)[-1]
        return value_for_schema(defs.get(ref, {}), seed_text, defs, prompt, name)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return pick_label(list(schema["enum"]), prompt)
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return value_for_schema(schema[key][0], seed_text, defs, prompt, name)
    kind = schema.get("type")
    nullable = isinstance(kind, list) and "null" in kind
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties", {})
        return {key: value_for_schema(sub, seed_text, defs, prompt, key) for key, sub in props.items()}
    if kind == "array":
        listed = numbers(prompt) if (schema.get("items") or {}).get("type") == "integer" else None
        if listed is not None:  # the matching right rows, or a ranking (``_semantic``)
            return listed
        count = max(1, int(schema.get("minItems", 1)))
        return [value_for_schema(schema.get("items", {}), seed_text, defs, prompt, name) for _ in range(count)]
    description = schema.get("description")
    keys = field_words(name, description if isinstance(description, str) else None)
    id_like = bool(name) and is_id_like(name, description if isinstance(description, str) else None)
    if kind in ("integer", "number"):
        found = id_for(prompt, keys) if id_like else None
        if found is not None and found.isdigit():
            return int(found) if kind == "integer" else float(found)
        return None if id_like and nullable else _number(schema, prompt, kind == "integer", keys, nullable)
    if kind == "boolean":
        return _boolean(name, prompt)
    if kind == "null":
        return None
    if schema.get("format") in ("date", "date-time"):
        return _date(prompt, keys, schema["format"] == "date-time", nullable)
    if id_like:
        found = id_for(prompt, keys)
        return found if found is not None or nullable else seed_text
    return seed_text
