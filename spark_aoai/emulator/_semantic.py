"""How the emulator answers the semantic operators' requests, read from the prompt as a model would read it.

The operators (``ai.filter``, ``ai.join``, ``ai.agg``, ``ai.top_k``) write prompts of a few fixed shapes; a
prompt of another shape is none of these and gets the ordinary answer. The rules are pure functions of the
text, so a test computes every operator's exact expected result on a generated table:

- a **condition** holds for a text when the text has one of the condition's key words (words of three letters
  or more that are not stop words, matched with their inflections): ``Condition: asks for a refund`` holds
  for "please refund me" (``holds``);
- a **pair** (``Left row ...: `` and ``Right row ...: `` lines) matches when the two texts share at least two
  key words and at least half of the smaller one's (``pair_matches``); a listing of right rows (``[i] ...``
  under ``Right rows ...:``) is answered with the numbers of those that match the left row;
- **texts to aggregate** (``Task: ...`` then ``- `` items) are answered with the most frequent key words over
  the items, most frequent first (``frequent_words``), so a reduce over answers keeps the most frequent words;
- **candidates to rank** (``Criterion: ...`` then ``[i] `` items) are ranked by how many of the criterion's key
  words each has, ties by number (``ranking``).
"""

from __future__ import annotations

import json
import re
from collections import Counter

from spark_aoai.emulator._labels import inflects, words

STOP_WORDS = frozenset(
    [
        "the",
        "and",
        "for",
        "with",
        "that",
        "this",
        "from",
        "are",
        "was",
        "were",
        "has",
        "have",
        "had",
        "its",
        "into",
        "not",
        "but",
        "all",
        "any",
        "can",
        "our",
        "your",
        "their",
        "his",
        "her",
        "them",
        "they",
        "she",
        "him",
        "you",
        "who",
        "what",
        "which",
        "when",
        "where",
        "why",
        "how",
        "does",
        "did",
        "about",
        "over",
        "under",
        "than",
        "then",
        "also",
        "just",
        "very",
        "more",
        "most",
        "some",
        "such",
        "only",
        "own",
        "same",
        "too",
        "will",
        "would",
        "should",
        "could",
        "been",
        "being",
        "row",
        "rows",
        "text",
        "texts",
        "left",
        "right",
        "condition",
        "holds",
    ]
)
FREQUENT_WORDS = 10  # how many words an aggregate answer keeps

_CONDITION = re.compile(r"^Condition: (?P<condition>.*?)\n\nText: (?P<text>.*)\Z", re.DOTALL)
_PAIR = re.compile(r"\nLeft row \([^)\n]*\): (?P<left>.*?)\n\nRight row \([^)\n]*\): (?P<right>.*)\Z", re.DOTALL)
_LISTING = re.compile(r"\nLeft row \([^)\n]*\): (?P<left>.*?)\n\nRight rows \([^)\n]*\):\n(?P<rows>.*)\Z", re.DOTALL)
_TASK = re.compile(r"^Task: [^\n]*\n\n[^\n]*:\n(?P<items>- .*)\Z", re.DOTALL)
_CRITERION = re.compile(r"^Criterion: (?P<criterion>[^\n]*)\n\nCandidates:\n(?P<items>\[\d+\] .*)\Z", re.DOTALL)
_NUMBERED = re.compile(r"^\[(?P<number>\d+)\] ", re.MULTILINE)


def key_words(text: str) -> set[str]:
    """The words of ``text`` that carry meaning: three letters or more, not stop words, lower case.

    >>> sorted(key_words("Asks for a refund of the order"))
    ['asks', 'order', 'refund']
    """
    return {w for w in words(text) if len(w) >= 3 and w not in STOP_WORDS and not w.isdigit()}


def holds(condition: str, text: str) -> bool:
    """Whether ``text`` has one of the condition's key words (or an inflection of one).

    >>> holds("asks for a refund", "Please refund my order"), holds("asks for a refund", "Where is my parcel?")
    (True, False)
    """
    found = key_words(text)
    return any(inflects(w, stem) or inflects(stem, w) for stem in key_words(condition) for w in found)


def pair_matches(left: str, right: str) -> bool:
    """Whether two texts share at least two key words and at least half of the smaller one's.

    >>> pair_matches("Acme blue kettle 2L", "Blue kettle by Acme"), pair_matches("Acme blue kettle", "Red toaster")
    (True, False)
    """
    a, b = key_words(left), key_words(right)
    shared = len(a & b)
    return shared >= 2 and 2 * shared >= min(len(a), len(b))


def _numbered(block: str) -> list[tuple[int, str]]:
    """``[i] text`` items of a block, in order (an item runs to the next one)."""
    marks = list(_NUMBERED.finditer(block))
    out = []
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(block)
        out.append((int(mark["number"]), block[mark.end() : end].strip()))
    return out


def frequent_words(items: list[str], count: int = FREQUENT_WORDS) -> list[str]:
    """The ``count`` key words found in most items (then most often overall), ties alphabetical.

    >>> frequent_words(["late refund", "refund please", "late again, refund"], 2)
    ['refund', 'late']
    """
    per_item: Counter[str] = Counter()
    overall: Counter[str] = Counter()
    for item in items:
        found = [w for w in words(item) if len(w) >= 3 and w not in STOP_WORDS and not w.isdigit()]
        per_item.update(set(found))
        overall.update(found)
    return sorted(per_item, key=lambda w: (-per_item[w], -overall[w], w))[:count]


def ranking(criterion: str, items: list[tuple[int, str]]) -> list[int]:
    """The items' numbers, most criterion key words first, ties by number."""
    wanted = key_words(criterion)
    return [n for n, text in sorted(items, key=lambda item: (-len(wanted & key_words(item[1])), item[0]))]


def verdict(prompt: str) -> bool | None:
    """A boolean answer for a pair check or a filter prompt; None for a prompt of another shape."""
    pair = _PAIR.search(prompt)
    if pair is not None and "\nRight rows (" not in prompt:
        return pair_matches(pair["left"], pair["right"])
    condition = _CONDITION.match(prompt)
    if condition is not None:
        return holds(condition["condition"], condition["text"])
    return None


def numbers(prompt: str) -> list[int] | None:
    """The numbers a listing (matching right rows) or a ranking prompt asks for; None for another shape."""
    listing = _LISTING.search(prompt)
    if listing is not None:
        return [n for n, text in _numbered(listing["rows"]) if pair_matches(listing["left"], text)]
    ranked = _CRITERION.match(prompt)
    if ranked is not None:
        return ranking(ranked["criterion"], _numbered(ranked["items"]))
    return None


def aggregate(prompt: str) -> str | None:
    """The answer to texts to aggregate: their most frequent key words; None for a prompt of another shape."""
    task = _TASK.match(prompt)
    if task is None:
        return None
    items = [_read(line[2:]) for line in task["items"].split("\n") if line.startswith("- ")]
    return ", ".join(frequent_words(items))


def _read(item: str) -> str:
    """An item as text: a typed answer (a JSON object) is its string values, not its keys."""
    if item.startswith("{"):
        try:
            value = json.loads(item)
        except ValueError:
            return item
        if isinstance(value, dict):
            return " ".join(str(v) for v in value.values() if isinstance(v, str))
    return item
