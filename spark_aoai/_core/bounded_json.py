"""JSON read from outside the process (HTTP bodies, answers, cache entries, batch files), with bounds.

``json.loads`` accepts ``NaN`` and ``Infinity`` (not JSON), turns ``1e400`` into ``inf``, and raises
``RecursionError`` (not ``ValueError``) on a body nested a thousand levels deep. ``loads`` here raises
``ValueError`` for all three, so every caller has one exception to turn into a row's error value.
"""

from __future__ import annotations

import json
import math
from typing import Any


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} does not fit a double")
    return value


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def loads(data: str | bytes | bytearray) -> Any:
    """Parse JSON from an untrusted source; ``ValueError`` for anything that is not plain, finite, parseable JSON.

    >>> loads('{"a": [1, 2.5]}')
    {'a': [1, 2.5]}
    >>> loads('[NaN]')
    Traceback (most recent call last):
    ...
    ValueError: NaN is not a JSON value
    """
    try:
        return json.loads(data, parse_float=_finite, parse_constant=_not_json)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply to read") from None
