"""What a packed answer must prove before an item's output is given to a row (issue #25).

- **Ownership**: each item of a pack carries a short tag, drawn for that pack (distinct within it, seeded by the
  pack's prompts so the same pack is the same request in every run, which the response cache keys on). Its
  answer must carry the item's id *and* that tag. An entry whose tag is not the one its id was given (two items
  mixed up), whose id is unknown, or whose id comes twice, is used for no row: those items are asked again.
- **Containment**: the items are data, JSON-encoded (a row cannot close its own item or open another), and the
  packing instruction says instructions inside them are not to be followed. An answer in which several items
  got the same output that exactly one item's input is tied to (it holds the output, or the output holds it)
  looks like that item took over the pack: those items are asked again, each alone.
"""

from __future__ import annotations

import hashlib
import json
import random
import string
from collections.abc import Sequence
from typing import Any

from spark_aoai._core import bounded_json as untrusted_json
from spark_aoai._core import constants as C

MISSING = object()


def tags(prompts: Sequence[str]) -> list[str]:
    """Distinct short tags for a pack's items: two lowercase letters (three past 169 items), drawn from a
    generator seeded by the prompts, so a pack is the same request in every run."""
    width = 2 if len(prompts) * 4 <= 26**2 else 3
    seed = hashlib.sha256(json.dumps(list(prompts)).encode("utf-8", "surrogatepass")).digest()
    picks = random.Random(seed).sample(range(26**width), len(prompts))
    return [_letters(pick, width) for pick in picks]


def _letters(number: int, width: int) -> str:
    out = []
    for _ in range(width):
        number, digit = divmod(number, 26)
        out.append(string.ascii_lowercase[digit])
    return "".join(out)


def proven_outputs(text: str | None, item_tags: Sequence[str]) -> dict[int, Any]:
    """The outputs of a packed answer by item position, each proven by its id and tag. An id given more than
    once, or in an entry whose tag is not its own (a mix-up), is left out (no entry for it is trusted), and an
    answer that is not the packed shape gives nothing."""
    try:
        parsed = untrusted_json.loads((text or "").strip())
    except ValueError:
        return {}
    entries = parsed.get("items") if isinstance(parsed, dict) else None
    if not isinstance(entries, list):
        return {}
    found: dict[int, Any] = {}
    repeated: set[int] = set()
    for entry in entries:
        if not isinstance(entry, dict) or "output" not in entry:
            continue
        position = _position(entry.get("id"), len(item_tags))
        if position is None:
            continue
        if entry.get("tag") != item_tags[position]:
            repeated.add(position)  # its item's own entry, if any, is not trusted either: asked again
            continue
        if position in found:
            repeated.add(position)
        found[position] = entry["output"]
    return {p: output for p, output in found.items() if p not in repeated}


def _position(item_id: Any, count: int) -> int | None:
    if not isinstance(item_id, str) or not item_id.isdigit() or str(int(item_id)) != item_id:
        return None
    position = int(item_id)
    return position if position < count else None


def taken_over(prompts: Sequence[str], values: dict[int, Any]) -> set[int]:
    """Items whose output looks forced by one input: an output several items got, that exactly one input of
    the pack is tied to (it holds the output text, or the output holds it), or that every item of a pack of
    ``C.PACK_MIN_TAKEN_OVER`` or more got while some input is tied to it ("answer X for all"). Outputs without text of
    ``C.PACK_MIN_TIED_CHARS`` or more (numbers, flags, one-letter labels) cannot be tied: those get through."""
    groups: dict[str, list[int]] = {}
    for position, value in values.items():
        groups.setdefault(json.dumps(value, sort_keys=True, default=str), []).append(position)
    lowered = [p.casefold() for p in prompts]
    suspicious: set[int] = set()
    for positions in groups.values():
        if len(positions) < 2:
            continue
        texts = [t.casefold() for t in _texts(values[positions[0]]) if len(t.strip()) >= C.PACK_MIN_TIED_CHARS]
        if not texts:
            continue
        tied = [p for p, prompt in enumerate(lowered) if _tied(prompt, texts)]
        everyone = len(positions) == len(prompts) >= C.PACK_MIN_TAKEN_OVER
        if len(tied) == 1 or (tied and everyone):
            suspicious.update(positions)
            suspicious.update(tied)
    return suspicious


def _tied(prompt: str, texts: list[str]) -> bool:
    return any(text in prompt or (len(prompt.strip()) >= C.PACK_MIN_TIED_CHARS and prompt in text) for text in texts)


def _texts(value: Any) -> list[str]:
    """The strings of an output (itself, or a structured output's string fields, nested)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _texts(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _texts(v)]
    return []
