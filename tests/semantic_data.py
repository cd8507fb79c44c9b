"""Generated tables for the semantic operators' tests and benchmarks: made-up words, so that what matches is
decided by the emulator's rules (``spark_aoai.emulator._semantic``) alone, and their ground truth."""

from __future__ import annotations

import random

from spark_aoai.emulator._semantic import key_words, pair_matches

LETTERS = "bcdfghjklmnprstvz"
VOWELS = "aeiou"


def vocabulary(size: int, seed: int = 1) -> list[str]:
    """``size`` distinct pronounceable made-up words of six letters."""
    rng = random.Random(seed)
    found: dict[str, None] = {}
    while len(found) < size:
        found["".join(rng.choice(LETTERS) + rng.choice(VOWELS) for _ in range(3))] = None
    return list(found)


def join_sides(rows: int, seed: int = 5) -> tuple[list[str], list[str]]:
    """Left and right texts: right row ``perm(i)`` names three of left row ``i``'s four words (a match) for
    two rows in three; the others are unrelated."""
    rng = random.Random(seed)
    words = vocabulary(4 * rows + 2000, seed)
    left = [" ".join(words[4 * i : 4 * i + 4]) for i in range(rows)]
    spare = words[4 * rows :]
    order = list(range(rows))
    rng.shuffle(order)
    right = [""] * rows
    for i, j in enumerate(order):
        if i % 3:
            own = [*rng.sample(words[4 * i : 4 * i + 4], 3), rng.choice(spare)]
            right[j] = " ".join(own)
        else:
            right[j] = " ".join(rng.sample(spare, 4))
    return left, right


def join_truth(left: list[str], right: list[str]) -> set[tuple[int, int]]:
    """Every matching pair (full pairwise, by the emulator's rule), by key-word index first."""
    index: dict[str, list[int]] = {}
    for j, text in enumerate(right):
        for word in key_words(text):
            index.setdefault(word, []).append(j)
    truth = set()
    for i, text in enumerate(left):
        near = {j for word in key_words(text) for j in index.get(word, [])}
        truth |= {(i, j) for j in near if pair_matches(text, right[j])}
    return truth


THEMES = {"refund": 0.7, "delivery": 0.5, "battery": 0.3}  # a theme word and the share of texts that have it


def agg_texts(count: int, words_each: int = 66, seed: int = 11) -> list[str]:
    """Texts of made-up words, each with the theme words at their shares: the answer's most frequent words."""
    rng = random.Random(seed)
    words = vocabulary(5000, seed)
    out = []
    for i in range(count):
        own = [*rng.sample(words, words_each), *(w for w, share in THEMES.items() if (i * 7919 % 1000) / 1000 < share)]
        rng.shuffle(own)
        out.append(" ".join(own))
    return out


CRITERION = "urgent outage payment failure"


def ranked_texts(count: int, best: int, seed: int = 13) -> list[str]:
    """Texts of made-up words: ``best`` of them (spread out) have every criterion word, 30 have two, one in
    five has one; the emulator ranks by criterion words, so the ``best`` are the top."""
    rng = random.Random(seed)
    words = vocabulary(3000, seed)
    criterion = CRITERION.split()
    tops = set(rng.sample(range(count), best))
    twos = set(rng.sample(sorted(set(range(count)) - tops), 30))
    out = []
    for i in range(count):
        extra = criterion if i in tops else rng.sample(criterion, 2) if i in twos else []
        extra = extra or (criterion[:1] if i % 5 == 0 else [])
        own = [*rng.sample(words, 8), *extra]
        rng.shuffle(own)
        out.append(" ".join(own))
    return out
