"""Output columns are built from buffers (``_arrow``), equal to ``pa.array``'s, without importing pandas."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from spark_aoai._core.arrow import array
from spark_aoai._core.columns import encode_vectors
from spark_aoai._core.contract import ROW_ERROR_ARROW_TYPE, USAGE_ARROW_TYPE

NESTED = pa.struct([("a", pa.list_(pa.int64())), ("b", pa.struct([("c", pa.string()), ("d", pa.bool_())]))])


@pytest.mark.parametrize(
    ("values", "arrow_type"),
    [
        (["a", None, "héllo ✓", ""], pa.string()),
        ([], pa.string()),
        ([None, None], pa.string()),
        ([1, None, -3], pa.int32()),
        ([2**40, None], pa.int64()),
        ([1.5, None, float("inf")], pa.float32()),
        ([1.5, None], pa.float64()),
        ([True, None, False] * 5, pa.bool_()),
        ([{"status": 400, "code": "x", "message": "m", "attempts": 1, "request_id": None}, None], ROW_ERROR_ARROW_TYPE),
        ([None, None], USAGE_ARROW_TYPE),
        ([{"prompt_tokens": 3, "total_tokens": 5}], USAGE_ARROW_TYPE),  # missing keys are null
        ([[1.0, 2.0], None, []], pa.list_(pa.float32())),
        ([{"a": [1, 2], "b": {"c": "x", "d": True}}, None, {"a": None, "b": None}], NESTED),
        (["2024-01-01"], pa.string()),
        ([1, None], pa.timestamp("s")),  # not built here: pa.array's
        ([1, 2.0], pa.float64()),
        ([1.5], pa.int64()),  # not built here: pa.array's (which truncates)
    ],
)
def test_array_equals_pa_array(values, arrow_type):
    built = array(values, arrow_type)
    built.validate(full=True)
    assert built.equals(pa.array(values, type=arrow_type))


@pytest.mark.parametrize(
    ("values", "arrow_type"),
    [([1, "x"], pa.string()), (["x"], pa.int32()), ([2**40], pa.int32()), (["3"], pa.int64()), (["1.5"], pa.float64()),
     (["false"], pa.bool_()), ([True, 2], pa.int64())],
)  # fmt: skip
def test_wrong_values_raise_like_pa_array(values, arrow_type):
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError)):
        array(values, arrow_type)


def test_vectors_equal_pa_array():
    class Results:
        values = [np.array([1.0, 2.0], dtype=np.float32), None, np.array([3.0], dtype=np.float32)]

    built = encode_vectors(Results())  # type: ignore[arg-type]
    built.validate(full=True)
    assert built.to_pylist() == [[1.0, 2.0], None, [3.0]]


def test_encoding_every_output_imports_neither_pandas_nor_pyarrow_compute():
    code = """
import sys
import numpy as np
from spark_aoai._core.contract import RowError, RowResults, Usage
from spark_aoai._core.columns import (ERROR_FIELD, USAGE_FIELD, FINISH_REASON_FIELD, SOURCE_FIELD, encode_strings,
    encode_vectors)
results = RowResults(3)
results.succeed([0], "an answer", Usage(1, 2, 3), "stop")
results.fail([1], RowError(400, "content_filter", "filtered"))
results.succeed([2], "x", None, None)
for field in (ERROR_FIELD, USAGE_FIELD, FINISH_REASON_FIELD, SOURCE_FIELD):
    field.encode(results)
encode_strings(results)
results.values[:] = [np.ones(3, dtype=np.float32), None, np.ones(3, dtype=np.float32)]
encode_vectors(results)
assert "pandas" not in sys.modules, "pandas was imported"
assert "pyarrow.compute" not in sys.modules, "pyarrow.compute was imported"
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def test_error_and_usage_columns_equal_pa_arrays_of_their_dicts():
    from spark_aoai._core.columns import ERROR_FIELD, USAGE_FIELD
    from spark_aoai._core.contract import RowError, RowResults, Usage

    results = RowResults(4)
    results.succeed([0], "a", Usage(1, 2, 3, None, 0), "stop")
    results.fail([1], RowError(400, "content_filter", "filtered ✓", 1, "req-1"))
    results.fail([2], RowError(None, "timeout", "no answer", 3))
    results.succeed([3], "b", None, None)
    errors = pa.array([None if e is None else e.as_dict() for e in results.errors], type=ROW_ERROR_ARROW_TYPE)
    usage = pa.array([None if u is None else u.as_dict() for u in results.usage], type=USAGE_ARROW_TYPE)
    assert ERROR_FIELD.encode(results).equals(errors) and USAGE_FIELD.encode(results).equals(usage)
