"""Structured answers: JSON that fits a schema and reads plausibly for the prompt, as a pure function of it.

An ``enum`` picks the label whose words best match the prompt, helped by a small sentiment lexicon ("Arrived
broken, and support never answered" is ``negative``, "Love it, works great" is ``positive``, neither is
``neutral``); the first label wins a tie. A number is the first number in the prompt, else its word count,
within the schema's bounds; a boolean says whether the prompt matches the field's name (or its polarity); a
string is the plain-text answer. The same request always gets the same JSON, so tests can compute it.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_POSITIVE_WORDS_TEXT = """
    love loved loves great excellent good amazing awesome perfect happy works working easy fast gorgeous
    recommend best nice fantastic wonderful beautiful pleased satisfied reliable powerful helpful glad
    like likes enjoy enjoyed superb brilliant quick smooth thanks
"""
POSITIVE_WORDS = frozenset(_POSITIVE_WORDS_TEXT.split())
_NEGATIVE_WORDS_TEXT = """
    broken broke bad terrible awful poor never worst hate hated slow late refund disappointed
    disappointing useless defective damaged missing angry problem problems fails failed failure rude
    waste wrong cracked leaking leaks stopped dead unusable horrible cancel cancelled complaint not no
"""
NEGATIVE_WORDS = frozenset(_NEGATIVE_WORDS_TEXT.split())
# Labels that stand for a polarity, whatever their exact spelling.
_POSITIVE_LABELS_TEXT = """
    positive pos good happy satisfied praise favorable favourable yes true like
"""
_POSITIVE_LABELS = frozenset(_POSITIVE_LABELS_TEXT.split())
_NEGATIVE_LABELS_TEXT = """
    negative neg bad unhappy angry complaint dissatisfied unfavorable unfavourable no false dislike
"""
_NEGATIVE_LABELS = frozenset(_NEGATIVE_LABELS_TEXT.split())
_NEUTRAL_LABELS_TEXT = """
    neutral mixed none other unknown neither
"""
_NEUTRAL_LABELS = frozenset(_NEUTRAL_LABELS_TEXT.split())


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def sentiment(text: str) -> int:
    """Positive minus negative lexicon words: ``> 0`` reads positive, ``< 0`` negative.

    >>> sentiment("Arrived broken, and support never answered"), sentiment("Love it, works great")
    (-2, 3)
    """
    found = words(text)
    return sum(w in POSITIVE_WORDS for w in found) - sum(w in NEGATIVE_WORDS for w in found)


def pick_label(labels: list[Any], prompt: str) -> Any:
    """The label whose words best match ``prompt`` (literal words first, then polarity); the first on a tie.

    >>> pick_label(["positive", "neutral", "negative"], "Arrived broken, and support never answered")
    'negative'
    >>> pick_label(["bug", "feature request", "question"], "Could you add a dark mode feature?")
    'feature request'
    """
    if not labels:
        return None
    prompt_words, net = set(words(prompt)), sentiment(prompt)

    def score(label: Any) -> float:
        label_words = set(words(str(label)))
        overlap = 2.0 * len(label_words & prompt_words)
        if label_words & _POSITIVE_LABELS:
            return overlap + max(0, net)
        if label_words & _NEGATIVE_LABELS:
            return overlap + max(0, -net)
        if label_words & _NEUTRAL_LABELS:
            return overlap + (0.5 if net == 0 else 0.0)
        return overlap

    scores = [score(label) for label in labels]
    return labels[scores.index(max(scores))]


def _number(schema: dict[str, Any], prompt: str, integer: bool) -> float | int:
    found = _NUMBER.search(prompt)
    value = float(found.group()) if found else float(len(words(prompt)))
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if low is not None and "exclusiveMinimum" in schema and "minimum" not in schema:
        low = float(low) + (1 if integer else 1e-6)
    if high is not None and "exclusiveMaximum" in schema and "maximum" not in schema:
        high = float(high) - (1 if integer else 1e-6)
    if low is not None:
        value = max(value, float(low))
    if high is not None:
        value = min(value, float(high))
    return int(value) if integer else value


def _boolean(name: str, prompt: str) -> bool:
    name_words = set(words(name.replace("_", " "))) - {"is", "has", "was", "contains"}
    if name_words & _POSITIVE_LABELS:
        return sentiment(prompt) > 0
    if name_words & (_NEGATIVE_LABELS | NEGATIVE_WORDS):
        return sentiment(prompt) < 0
    if name_words & set(words(prompt)):
        return True
    return zlib.crc32(prompt.encode()) % 2 == 0


def value_for_schema(
    schema: Any, seed_text: str, defs: dict[str, Any] | None = None, prompt: str | None = None, name: str = ""
) -> Any:
    """A value that validates against a JSON schema (the subset structured outputs allow).

    Strings are ``seed_text``; labels, numbers and booleans are read from ``prompt`` (``seed_text`` if None).
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
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties", {})
        return {key: value_for_schema(sub, seed_text, defs, prompt, key) for key, sub in props.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        return [value_for_schema(schema.get("items", {}), seed_text, defs, prompt, name) for _ in range(count)]
    if kind in ("integer", "number"):
        return _number(schema, prompt, kind == "integer")
    if kind == "boolean":
        return _boolean(name, prompt)
    if kind == "null":
        return None
    return seed_text
