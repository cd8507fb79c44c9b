"""Facts a structured answer reads from the prompt: numbers, ids and dates, each the one nearest its field's name.

A field named ``order_id`` (or described as "an order number") takes what follows "order" in "charged twice,
order #4411" (``4411``); a ``days_late`` number the 3 of "3 days late"; a date field the date in the text,
answered in ISO form (``2024-03-05``, ``2024-03-05T14:30:00Z``), whether the text says "2024-03-05",
"March 5, 2024", "5 Mar 2024" or "03/05/2024". Without a field word nearby the first one found stands in; with
none at all, the caller decides (null for a nullable field). Pure functions of the text.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import TypeVar

from spark_aoai.emulator._labels import inflects, words

T = TypeVar("T")

# Characters between a field's word and its value that still tie them ("order #4411", "order number: 4411").
REACH = 24
_SIGN = r"(?:(?<![\w-])-)?"
_NUMBER = re.compile(rf"{_SIGN}\d{{1,3}}(?:,\d{{3}})+(?:\.\d+)?(?![\w,])|{_SIGN}\d+(?:\.\d+)?")
_ID = re.compile(r"#?\b[A-Za-z0-9]+(?:[-_/][A-Za-z0-9]+)*\b")
_ID_WORDS = frozenset(("id", "ids", "number", "no", "num", "code", "ref", "reference", "sku", "key"))
_MONEY = frozenset(("amount", "price", "cost", "total", "paid", "fee", "charge", "charged", "refund", "spent"))
_CURRENCIES = ("$", "€", "£", "eur", "euro", "usd", "dollar", "gbp", "pound")
_FILLER = frozenset(("the", "a", "an", "of", "in", "for", "to", "is", "its", "this", "that", "and", "or", "any"))
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
_MONTH = "(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DATES = (
    re.compile(r"\b(?P<year>\d{4})-(?P<mm>\d{1,2})-(?P<day>\d{1,2})(?!\d)"),
    re.compile(rf"\b{_MONTH}\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<year>\d{{4}})\b", re.IGNORECASE),
    re.compile(rf"\b(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\s*,?\s+(?P<year>\d{{4}})\b", re.IGNORECASE),
    re.compile(r"\b(?P<mm>\d{1,2})/(?P<day>\d{1,2})/(?P<year>\d{4})\b"),
)
_TIME = re.compile(r"(?<!\d)(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?\s*(?P<half>[ap]\.?m\.?)?", re.I)


def _name_words(name: str) -> list[str]:
    """``orderId``, ``order_id`` and ``order-id`` are the words ``order`` and ``id``."""
    return words(re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).replace("_", " ").replace("-", " "))


def field_words(name: str, description: str | None = None) -> list[str]:
    """The words a field's name and description are known by in a text: ``order_id`` -> ``["order"]``.

    >>> field_words("orderId", "an order number"), field_words("days_late")
    (['order'], ['days', 'late'])
    """
    found = _name_words(name) + words(description or "")
    kept = [w for w in found if w not in _ID_WORDS and w not in _FILLER and len(w) > 1]
    return list(dict.fromkeys(kept))


def is_id_like(name: str, description: str | None = None) -> bool:
    """Whether a string field holds an identifier (``order_id``, ``invoiceNumber``, "the ticket reference")."""
    named = _name_words(name)
    return bool(named and named[-1] in _ID_WORDS) or bool(set(words(description or "")) & _ID_WORDS)


def _related(word: str, key: str) -> bool:
    """``word`` in a text names field word ``key``: an inflection either way, or a long common stem."""
    stem = 0
    while stem < min(len(word), len(key)) and word[stem] == key[stem]:
        stem += 1
    return inflects(word, key) or inflects(key, word) or stem >= 6


def _anchors(text: str, keys: list[str]) -> list[int]:
    """Where each mention of a field word ends in ``text`` (a currency, for a field about money)."""
    if set(keys) & _MONEY:
        keys = [*keys, *_CURRENCIES]
    tokens = re.finditer(r"[^\W_]+|[$€£]", text)
    return [m.end() for m in tokens if any(_related(m.group().lower(), k) for k in keys)]


def nearest(found: Iterable[tuple[int, int, T]], text: str, keys: list[str]) -> T | None:
    """Of ``(start, end, value)`` spans, the one just after a field word (within :data:`REACH`), or just before.

    None when no span is that close to a mention of ``keys``.
    """
    anchors = _anchors(text, keys)
    best: tuple[float, T] | None = None
    for start, end, value in found:
        for anchor in anchors:
            distance = start - anchor if start >= anchor else 2 * (anchor - end) + 1  # after the word reads better
            if 0 <= distance <= REACH and (best is None or distance < best[0]):
                best = (distance, value)
    return best[1] if best else None


def numbers(text: str) -> list[tuple[int, int, float]]:
    """Every number in ``text`` (``1,299.50`` is one), as ``(start, end, value)``."""
    return [(m.start(), m.end(), float(m.group().replace(",", ""))) for m in _NUMBER.finditer(text)]


def number_for(text: str, keys: list[str]) -> float | None:
    """The number nearest a field word, else the first that is not part of an id (``#4411``) or a date.

    >>> number_for("Pixel 8, 3 days late", ["days", "late"]), number_for("Pixel 8", ["days"]), number_for("x", [])
    (3.0, 8.0, None)
    """
    found = numbers(text)
    near = nearest(found, text, keys)
    if near is not None:
        return near
    taken = [(start, end) for start, end, _ in dates(text)]
    loose = [v for start, end, v in found if text[start - 1 : start] != "#" and not _inside(start, end, taken)]
    return loose[0] if loose else None


def _inside(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(low <= start and end <= high for low, high in spans)


def _looks_like_id(token: str) -> bool:
    bare = token.lstrip("#")
    digits = sum(c.isdigit() for c in bare)
    if not digits or dates(bare):
        return False
    if token.startswith("#") or any(c.isalpha() for c in bare):
        return True
    return len(bare) >= 3 and not (len(bare) == 4 and 1900 <= int(bare) <= 2099)  # a year is not an id


def id_for(text: str, keys: list[str]) -> str | None:
    """An identifier in ``text``: the one after a field word ("order #4411"), else a ``#``-number or a code.

    >>> id_for("I was charged twice, order #4411", ["order"]), id_for("Ticket INC-2291 is open", ["order"])
    ('4411', 'INC-2291')
    >>> id_for("The app crashes on my Pixel 8 since 2024", ["order"]) is None
    True
    """
    tokens = [(m.start(), m.end(), m.group()) for m in _ID.finditer(text) if _looks_like_id(m.group())]
    near = nearest(tokens, text, keys)
    chosen = near if near is not None else (tokens[0][2] if tokens else None)
    return chosen.lstrip("#") if chosen else None


def dates(text: str) -> list[tuple[int, int, dt.date]]:
    """Every calendar date written in ``text``, as ``(start, end, date)``, in the order they appear."""
    found: dict[int, tuple[int, int, dt.date]] = {}
    for pattern in _DATES:
        for match in pattern.finditer(text):
            parts = match.groupdict()
            month = _MONTHS[parts["month"].lower()] if parts.get("month") else int(parts["mm"])
            try:
                day = dt.date(int(parts["year"]), month, int(parts["day"]))
            except ValueError:
                try:  # 05/03/2024 that is not a month/day: day/month
                    day = dt.date(int(parts["year"]), int(parts["day"]), month)
                except ValueError:
                    continue
            found.setdefault(match.start(), (match.start(), match.end(), day))
    return sorted(found.values(), key=lambda span: span[0])


def _time_after(text: str, end: int) -> dt.time:
    """The time of day written just after a date (``at 2:30 pm``), else midnight."""
    match = _TIME.search(text, end, end + REACH)
    if not match:
        return dt.time(0, 0)
    hour, minute, second = int(match["hour"]), int(match["minute"]), int(match["second"] or 0)
    if match["half"] and match["half"].lower().startswith("p") and hour < 12:
        hour += 12
    elif match["half"] and hour == 12:
        hour = 0
    try:
        return dt.time(hour, minute, second)
    except ValueError:
        return dt.time(0, 0)


def date_for(text: str, keys: list[str], with_time: bool) -> str | None:
    """The ISO date (``with_time``: date-time, UTC) in ``text`` nearest a field word, else the first; or None.

    >>> date_for("Ordered March 3, 2024, delivered 2024-03-09 at 2:30 pm", ["delivery"], True)
    '2024-03-09T14:30:00Z'
    >>> date_for("Logged 2024-03-09T08:15:00Z", ["logged"], True), date_for("ordered 03/14/2024", ["order"], False)
    ('2024-03-09T08:15:00Z', '2024-03-14')
    >>> date_for("Ordered 5 Mar 2024", ["delivery"], False), date_for("no date", [], False)
    ('2024-03-05', None)
    """
    found = dates(text)
    if not found:
        return None
    spans = [(start, end, (day, end)) for start, end, day in found]
    day, end = nearest(spans, text, keys) or spans[0][2]
    if not with_time:
        return day.isoformat()
    return dt.datetime.combine(day, _time_after(text, end)).isoformat() + "Z"
