"""Cheap models and log-probabilities: what a model cascade needs from the emulator.

The emulator's usual answer (``_model``) is the *ground truth*: what every model that is not cheap answers.
A cheap model (a deployment of :data:`CHEAP_MODELS`: ``gpt-4.1-nano``, ``gpt-4o-mini``, ...) answers wrong on
``Faults.cheap_wrong_rate`` of the rows, chosen by a hash of the row's input and ``Faults.seed`` (the same row
is wrong every time, packed or not). On ``Faults.cheap_confidence_correlation`` of its wrong rows it is unsure
(a low log-probability on the value it got wrong); on the others, and on every right row, it is sure. With a
correlation of 0 its confidence says nothing about being right.

A request with ``logprobs: true`` gets ``choices[0].logprobs.content``: the answer's tokens, each with its
``logprob``, ``bytes`` and ``top_logprobs`` (``top_logprobs`` of them, 0 to 20), as Azure sends them. The
JSON syntax of a structured answer is certain (logprob near 0); of a row's values one carries the row's
confidence (the one a wrong row got wrong), the others are near certain. In a packed answer each item's
values carry that item's confidence. With ``Faults.cheap_logprobs`` off a cheap model sends ``logprobs: null``.

Asked with a ``temperature`` above 0, a cheap model samples: the value a row's confidence sits on deviates from
its usual answer with probability 1 - confidence (drawn by the request's ``seed`` and the row's input), so two
samples of an unsure row disagree more often than two of a sure one.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator
from typing import Any

from spark_aoai.emulator._model import last_user_text, packed_key
from spark_aoai.emulator._settings import Faults

CHEAP_MODELS = ("gpt-4.1-nano", "gpt-4.1-mini", "gpt-4o-mini", "gpt-5-nano", "gpt-5-mini", "gpt-35-turbo")
SURE = (0.80, 0.999)  # the confidence of a right row (and of an uncorrelated wrong one), uniform in this range
UNSURE = (0.30, 0.85)  # the confidence of a wrong row that shows it
CERTAIN_LOGPROB = -1e-5  # JSON syntax, and the values a row is sure of
FINAL_CONFIDENCE = (0.98, 0.9999)
_TOKEN = re.compile(r"\w+|\s+|[^\w\s]", re.UNICODE)


def is_cheap(model: str) -> bool:
    """Whether a deployment named ``model`` is a cheap model (``gpt-4o-mini``, ``gpt-4.1-nano-2025``, ...).

    >>> is_cheap("gpt-4.1-nano"), is_cheap("gpt-4o-mini-prod"), is_cheap("gpt-4.1"), is_cheap("gpt-4o")
    (True, True, False, False)
    """
    return model.lower().startswith(CHEAP_MODELS)


def _draw(faults: Faults, purpose: str, text: str) -> float:
    """A uniform number in [0, 1) fixed by the seed, the purpose and the row's input."""
    key = f"{faults.seed or 0}\x00{purpose}\x00{text}".encode()  # blake2b: crc32 is linear, its draws would correlate
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64


def verdict(faults: Faults, model: str, text: str) -> tuple[bool, float, int]:
    """(wrong, confidence, which value) for the row whose input is ``text``, answered by ``model``.

    >>> verdict(Faults(), "gpt-4.1", "hello")[0], verdict(Faults(cheap_wrong_rate=1.0), "gpt-4.1-nano", "hi")[0]
    (False, True)
    """
    leaf = int(_draw(faults, "value", text) * 1_000_003)
    spread = _draw(faults, "confidence", text)
    if not is_cheap(model):
        low, high = FINAL_CONFIDENCE
        return False, low + (high - low) * spread, leaf
    wrong = _draw(faults, "wrong", text) < faults.cheap_wrong_rate
    shows = wrong and _draw(faults, "signal", text) < faults.cheap_confidence_correlation
    low, high = UNSURE if shows else SURE
    return wrong, low + (high - low) * spread, leaf


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    else:
        yield path, value


def _schema_at(schema: Any, path: tuple[Any, ...]) -> dict[str, Any]:
    for step in path:
        if not isinstance(schema, dict):
            return {}
        schema = schema.get("items", {}) if isinstance(step, int) else (schema.get("properties") or {}).get(step, {})
    return schema if isinstance(schema, dict) else {}


def _wrong(value: Any, schema: dict[str, Any]) -> Any:
    """Another value of the same kind: the next label of an enum, the other boolean, a misread string."""
    options = [o for o in schema.get("enum") or () if o is not None]
    if len(options) > 1:
        return options[(options.index(value) + 1) % len(options)] if value in options else options[0]
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if value is None:
        return "unknown"
    return f"{value} (misread)"


def _set(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    value[path[0]] = _set(value[path[0]], path[1:], new)
    return value


def _deviates(faults: Faults, sample: str | None, text: str, confidence: float) -> bool:
    """Whether a sampled answer (``sample``: the request's seed) strays from the usual one: 1 - confidence."""
    return sample is not None and _draw(faults, f"sample {sample}", text) >= confidence


def _one_row(
    value: Any, schema: dict[str, Any], faults: Faults, model: str, text: str, sample: str | None = None
) -> tuple[Any, dict, float]:
    """A row's answer as the model gives it, and the confidence of each of its values (by path)."""
    wrong, confidence, leaf = verdict(faults, model, text)
    leaves = list(_leaves(value))
    if not leaves:
        return value, {}, confidence
    chosen = leaves[leaf % len(leaves)][0]
    for _ in range(wrong + _deviates(faults, sample, text, confidence)):
        value = _set(value, chosen, _wrong(dict(_leaves(value))[chosen], _schema_at(schema, chosen)))
    return value, {chosen: confidence}, confidence


def _sample(model: str, body: dict[str, Any]) -> str | None:
    """The seed of a cheap model's sampled answer (asked with a temperature above 0), or None."""
    temperature = body.get("temperature")
    sampled = isinstance(temperature, (int, float)) and not isinstance(temperature, bool) and temperature > 0
    return str(body.get("seed")) if sampled and is_cheap(model) else None


def answer(model: str, body: dict[str, Any], content: str, faults: Faults) -> tuple[str, dict[str, Any] | None]:
    """The content as ``model`` answers it (a cheap model's wrong rows changed) and its ``logprobs`` (None
    unless asked for)."""
    wanted = body.get("logprobs") is True and (faults.cheap_logprobs or not is_cheap(model))
    if not wanted and not (is_cheap(model) and faults.cheap_wrong_rate > 0):
        return content, None
    response_format = body.get("response_format") or {}
    schema = (response_format.get("json_schema") or {}).get("schema") or {}
    try:
        value = json.loads(content) if response_format.get("type") in ("json_object", "json_schema") else None
    except ValueError:  # a fault broke it: answered as it is, every token as sure as the row
        value = None
    text = last_user_text(body["messages"])
    sample = _sample(model, body)
    if value is None:
        wrong, confidence, _ = verdict(faults, model, text)
        content = f"{content} (a wrong answer)" if wrong else content
        content = f"{content} (another sample)" if _deviates(faults, sample, text, confidence) else content
        pieces = [(content, math.log(confidence))]
    else:
        key = packed_key(schema)
        inputs = _packed_inputs(text) if key else None
        sure: dict[tuple[Any, ...], float] = {}
        if key and inputs is not None and isinstance(value.get(key), list):
            item_schema = _schema_at(schema, (key, 0, "output"))
            for index, item in enumerate(value[key]):
                if isinstance(item, dict) and "output" in item and item.get("id") in inputs:
                    item["output"], row_sure, _ = _one_row(item["output"], item_schema, faults, model,
                                                           inputs[item["id"]], sample)  # fmt: skip
                    sure.update({(key, index, "output", *path): c for path, c in row_sure.items()})
        else:
            value, sure, _ = _one_row(value, schema, faults, model, text, sample)
        content = json.dumps(value)
        pieces = list(_pieces(value, (), sure))
    return content, (_logprobs(pieces, body.get("top_logprobs")) if wanted else None)


def _packed_inputs(text: str) -> dict[str, str] | None:
    try:
        items = json.loads(text).get("items")
        return {str(i["id"]): str(i.get("input")) for i in items if isinstance(i, dict)}
    except (ValueError, AttributeError, TypeError, KeyError):
        return None


def _pieces(value: Any, path: tuple[Any, ...], sure: dict[tuple[Any, ...], float]) -> Iterator[tuple[str, float]]:
    """``json.dumps(value)`` in pieces, each with the logprob of its first token (syntax: certain)."""
    if isinstance(value, (dict, list)):
        opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
        yield opening, CERTAIN_LOGPROB
        entries = value.items() if isinstance(value, dict) else enumerate(value)
        for position, (key, item) in enumerate(entries):
            prefix = ", " if position else ""
            if isinstance(value, dict):
                prefix += json.dumps(key) + ": "
            if prefix:
                yield prefix, CERTAIN_LOGPROB
            yield from _pieces(item, (*path, key), sure)
        yield closing, CERTAIN_LOGPROB
        return
    yield json.dumps(value), math.log(sure.get(path, 1.0)) if path in sure else CERTAIN_LOGPROB


def _logprobs(pieces: list[tuple[str, float]], top: Any) -> dict[str, Any]:
    """Azure's ``choices[0].logprobs``: one entry per token; a piece's first word carries its logprob."""
    count = min(max(int(top or 0), 0), 20)
    content = []
    for text, logprob in pieces:
        carried = False
        for token in _TOKEN.findall(text):
            value = CERTAIN_LOGPROB
            if not carried and (token[0].isalnum() or token[0] in "-_" or token.isdigit()):
                value, carried = logprob, True
            content.append(_entry(token, value, count))
        if not carried and content and logprob != CERTAIN_LOGPROB:
            content[-1] = _entry(content[-1]["token"], logprob, count)
    return {"content": content, "refusal": None}


def _entry(token: str, logprob: float, top: int) -> dict[str, Any]:
    rest = max(1e-9, 1.0 - math.exp(logprob))
    alternatives = [(token, logprob)] + [(f"<alt{i}>", math.log(rest / max(1, top - 1))) for i in range(1, top)]
    alternatives.sort(key=lambda pair: -pair[1])
    return {
        "token": token,
        "logprob": logprob,
        "bytes": list(token.encode("utf-8")),
        "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode("utf-8"))} for t, lp in alternatives],
    }
