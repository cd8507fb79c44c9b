"""Arrow arrays from Python values, built from buffers.

``pa.array`` checks whether its argument is pandas-like, and that check imports pandas: ~150 ms on every fresh
Python worker, which a ``mapInArrow`` task otherwise never needs (a 4-row job's whole cold start), and
``StructArray.from_arrays`` with a mask imports ``pyarrow.compute`` (~50 ms). The output
columns are built here instead, from numpy buffers, for the types the library produces (strings, integers,
floats, booleans, lists and structs of them); any other type goes through ``pa.array``.

>>> array(["a", None], pa.string()).to_pylist()
['a', None]
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate
from typing import Any

import numpy as np
import pyarrow as pa

_NUMBERS = {
    pa.int32(): np.int32,
    pa.int64(): np.int64,
    pa.float32(): np.float32,
    pa.float64(): np.float64,
}
_MAX_OFFSET = 2**31 - 1


def array(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array:
    """``pa.array(values, type=arrow_type)``, without importing pandas for the types listed above."""
    if pa.types.is_string(arrow_type):
        return _strings(values)
    if arrow_type in _NUMBERS:
        return _numbers(values, arrow_type)
    if pa.types.is_boolean(arrow_type):
        return _booleans(values)
    if pa.types.is_struct(arrow_type):
        return _structs(values, arrow_type)
    if pa.types.is_list(arrow_type):
        return _lists(values, arrow_type)
    return pa.array(values, type=arrow_type)


def validity(valid: np.ndarray) -> pa.Buffer | None:
    """The validity bitmap of ``valid`` (one bool per value), or None when every value is present."""
    if bool(valid.all()):
        return None
    return pa.py_buffer(np.packbits(valid, bitorder="little"))


def offsets(lengths: Sequence[int]) -> pa.Buffer:
    """Int32 offsets from lengths (0 first)."""
    return pa.py_buffer(np.fromiter(accumulate(lengths, initial=0), dtype=np.int32, count=len(lengths) + 1))


def _valid(values: Sequence[Any]) -> np.ndarray:
    return np.fromiter((v is not None for v in values), dtype=bool, count=len(values))


def _strings(values: Sequence[Any]) -> pa.Array:
    try:
        encoded = [b"" if v is None else v.encode("utf-8") for v in values]
    except AttributeError:
        return pa.array(values, type=pa.string())  # not all strings: pa.array's own error
    lengths = [len(b) for b in encoded]
    if sum(lengths) > _MAX_OFFSET:
        return pa.array(values, type=pa.string())
    valid = _valid(values)
    return pa.StringArray.from_buffers(len(values), offsets(lengths), pa.py_buffer(b"".join(encoded)), validity(valid))


def _numbers(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array:
    integral = pa.types.is_integer(arrow_type)
    allowed = (int,) if integral else (int, float)
    if any(v is not None and (isinstance(v, bool) or not isinstance(v, allowed)) for v in values):
        return pa.array(values, type=arrow_type)  # what pa.array makes of it, or its error
    try:
        data = np.fromiter((0 if v is None else v for v in values), dtype=_NUMBERS[arrow_type], count=len(values))
    except (TypeError, ValueError, OverflowError):
        return pa.array(values, type=arrow_type)
    return pa.Array.from_buffers(arrow_type, len(values), [validity(_valid(values)), pa.py_buffer(data)])


def _booleans(values: Sequence[Any]) -> pa.Array:
    if any(v is not None and not isinstance(v, bool) for v in values):
        return pa.array(values, type=pa.bool_())
    data = np.fromiter((bool(v) for v in values), dtype=bool, count=len(values))
    bits = pa.py_buffer(np.packbits(data, bitorder="little"))
    return pa.Array.from_buffers(pa.bool_(), len(values), [validity(_valid(values)), bits])


def struct_of(columns: Sequence[Sequence[Any]], valid: Sequence[bool], arrow_type: pa.StructType) -> pa.Array:
    """A struct array from one list per field (``columns``, in the type's order) and which rows are present:
    what the output columns use, as it skips a dict per row."""
    children = [array(column, arrow_type.field(i).type) for i, column in enumerate(columns)]
    present = np.fromiter(valid, dtype=bool, count=len(valid))
    return pa.Array.from_buffers(arrow_type, len(valid), [validity(present)], children=children)


def _structs(values: Sequence[Any], arrow_type: pa.StructType) -> pa.Array:
    if any(v is not None and not isinstance(v, dict) for v in values):
        return pa.array(values, type=arrow_type)
    fields = [arrow_type.field(i) for i in range(arrow_type.num_fields)]
    children = [array([None if v is None else v.get(f.name) for v in values], f.type) for f in fields]
    # from_buffers, not StructArray.from_arrays: its mask imports pyarrow.compute (~50 ms more)
    return pa.Array.from_buffers(arrow_type, len(values), [validity(_valid(values))], children=children)


def _lists(values: Sequence[Any], arrow_type: pa.ListType) -> pa.Array:
    if any(v is not None and not isinstance(v, (list, tuple)) for v in values):
        return pa.array(values, type=arrow_type)
    items = [item for v in values if v is not None for item in v]
    child = array(items, arrow_type.value_type)
    lengths = [0 if v is None else len(v) for v in values]
    return pa.Array.from_buffers(
        arrow_type, len(values), [validity(_valid(values)), offsets(lengths)], children=[child]
    )
