"""The emulator's small lexicon: how it picks a label for a prompt, and the topics its embeddings share.

Labels are picked by evidence, from the label's own words and the lexicon.
Each label scores the prompt words that name it (``bug`` in "a bug in the export"), its synonyms from
:data:`SYNONYMS` ("crashes" for ``bug``, "charged" and "refund" for ``billing``, "how ... ?" for ``question``)
and, for a label that stands for a polarity (``positive``, ``negative``, ``mixed``, ``neutral``), the prompt's
sentiment words. The highest score wins; the first label only when nothing tells them apart. Words match with
their inflections (``crash`` matches "crashes", "crashed", "crashing"), so the lists stay short.
"""

from __future__ import annotations

import functools
import re
from typing import Any

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_ENDINGS = ("s", "es", "ed", "ing", "er", "ers")

_POSITIVE_TEXT = """
    love great excellent good amazing awesome perfect happy work easy fast gorgeous recommend best nice
    fantastic wonderful beautiful pleased satisfied reliable powerful helpful glad like enjoy superb brilliant
    quick smooth thank
"""
_NEGATIVE_TEXT = """
    broken broke bad terrible awful poor never worst hate slow late refund disappoint useless defective damage
    missing angry problem fail failure rude waste wrong crack leak stop dead unusable horrible cancel complaint
    not no crash freeze froze overcharge error bug
"""
POSITIVE_WORDS = frozenset(_POSITIVE_TEXT.split())
NEGATIVE_WORDS = frozenset(_NEGATIVE_TEXT.split())

# Labels that stand for a polarity, whatever their exact spelling.
_POSITIVE_LABELS_TEXT = "positive pos good happy satisfied praise favorable favourable yes true like"
_NEGATIVE_LABELS_TEXT = "negative neg bad unhappy angry complaint dissatisfied unfavorable unfavourable no false"
_NEUTRAL_LABELS_TEXT = "neutral none other unknown neither"
POSITIVE_LABELS = frozenset(_POSITIVE_LABELS_TEXT.split())
NEGATIVE_LABELS = frozenset(_NEGATIVE_LABELS_TEXT.split())
NEUTRAL_LABELS = frozenset(_NEUTRAL_LABELS_TEXT.split())
MIXED_LABELS = frozenset(("mixed", "ambivalent"))

# A label word -> words in a prompt that speak for it (the label word itself always does).
_SYNONYMS_TEXT = {
    "bug": "crash freeze froze error broken fail glitch exception defect hang stuck wrong",
    "feature": "add added adding request wish suggest suggestion option allow could would idea enhancement new",
    "question": "how what why where when which who can help explain",
    "billing": "bill charge invoice refund payment pay paid price cost subscription money card receipt twice",
    "shipping": "ship deliver delivery arrive parcel package courier track late",
    "account": "login log password sign account locked reset username",
    "performance": "slow lag fast speed latency timeout",
    "security": "hack breach phish password leak vulnerability",
    "praise": "love great thank excellent amazing",
    "complaint": "bad terrible awful never refund angry disappoint",
    "spam": "unsubscribe winner prize offer click",
    "urgent": "urgent asap immediately now critical down outage",
}
SYNONYMS = {label: frozenset(text.split()) for label, text in _SYNONYMS_TEXT.items()}


# Topics whose words an embedding shares a feature for, so texts on one topic are close without a shared word
# ("How to reset a forgotten account password" and "Setting up two-factor authentication"), as in a real model.
_TOPICS_TEXT = {
    "account": "account password login sign signin security authentication authenticate credential forgot forgotten "
    "reset username locked",
    "finance": "revenue profit quarter quarterly annual report percent figure earnings sales growth grew income "
    "margin budget forecast",
    "billing": "bill billing invoice charge refund payment pay paid price subscription receipt",
    "shipping": "ship shipping delivery deliver arrive parcel package courier tracking",
    "defect": "crash freeze froze error bug broken fail glitch exception",
}
_TOPIC_STEMS = tuple((stem, topic) for topic, text in _TOPICS_TEXT.items() for stem in text.split())


@functools.lru_cache(maxsize=1 << 16)
def topic_of(word: str) -> str | None:
    """The topic a (lower-case) word belongs to, if any: ``passwords`` -> ``account``.

    >>> topic_of("passwords"), topic_of("quarterly"), topic_of("cat")
    ('account', 'finance', None)
    """
    return next((topic for stem, topic in _TOPIC_STEMS if word[:2] == stem[:2] and inflects(word, stem)), None)


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def inflects(word: str, stem: str) -> bool:
    """Whether ``word`` is ``stem`` or ``stem`` with a common ending (``charged``, ``crashes``, ``shipping``).

    A stem of three letters or fewer takes only a plural ``s`` (``not`` is not "noted").

    >>> inflects("crashes", "crash"), inflects("charging", "charge"), inflects("shipped", "ship")
    (True, True, True)
    >>> inflects("crust", "crash"), inflects("noted", "not"), inflects("later", "late")
    (False, False, False)
    """
    if word == stem or (len(stem) <= 3 and word == stem + "s"):
        return True
    if len(stem) <= 3:
        return False
    if stem.endswith("e"):
        return word in (stem + "s", stem + "d") or (word.startswith(stem[:-1]) and word[len(stem) - 1 :] == "ing")
    if not word.startswith(stem):
        return False
    ending = word[len(stem) :]
    if ending[:1] == stem[-1] and stem[-1] not in "aeiouy":  # a doubled consonant: stopped, shipping
        ending = ending[1:]
    return ending in _ENDINGS


def count_of(found: list[str], lexicon: frozenset[str]) -> int:
    """How many of the words ``found`` are (inflections of) words of ``lexicon``."""
    return sum(any(inflects(w, stem) for stem in lexicon if w[:2] == stem[:2]) for w in found)


def polarity(text: str) -> tuple[int, int]:
    """(positive words, negative words) of ``text``, by the lexicon."""
    found = words(text)
    return count_of(found, POSITIVE_WORDS), count_of(found, NEGATIVE_WORDS)


def sentiment(text: str) -> int:
    """Positive minus negative lexicon words: ``> 0`` reads positive, ``< 0`` negative.

    >>> sentiment("Arrived broken, and support never answered"), sentiment("Love it, works great")
    (-2, 3)
    """
    positive, negative = polarity(text)
    return positive - negative


def _evidence(label: Any, prompt_words: list[str], asks: bool, positive: int, negative: int) -> float:
    label_words = words(str(label))
    named = 2.0 * sum(any(inflects(w, stem) for w in prompt_words) for stem in label_words)
    synonyms = frozenset().union(*(SYNONYMS.get(w, frozenset()) for w in label_words))
    score = named + count_of(prompt_words, synonyms)
    if "question" in label_words and asks:
        score += 1.0
    kinds = set(label_words)
    if kinds & POSITIVE_LABELS:
        score += max(0, positive - negative)
    elif kinds & NEGATIVE_LABELS:
        score += max(0, negative - positive)
    elif kinds & MIXED_LABELS:
        score += 1.5 if positive and negative and abs(positive - negative) <= 1 else 0.0
    elif kinds & NEUTRAL_LABELS:
        score += 0.5 if positive == negative else 0.0
    return score


def pick_label(labels: list[Any], prompt: str) -> Any:
    """The label with the most evidence in ``prompt``; the first when none has more than another.

    A ``None`` among the labels (a nullable enum) is answered only when there is no other.

    >>> pick_label(["positive", "neutral", "negative"], "Arrived broken, and support never answered")
    'negative'
    >>> pick_label(["bug", "feature", "question", "billing"], "I was charged twice, order #4411. Please refund!")
    'billing'
    """
    candidates = [label for label in labels if label is not None]
    if not candidates:
        return None
    prompt_words = words(prompt)
    positive, negative = polarity(prompt)
    asks = "?" in prompt
    scores = [_evidence(label, prompt_words, asks, positive, negative) for label in candidates]
    return candidates[scores.index(max(scores))]
