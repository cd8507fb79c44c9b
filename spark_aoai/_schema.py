"""Output column types, Spark and Arrow side by side, and input column validation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql.types import (
    ArrayType,
    DataType,
    FloatType,
    IntegerType,
    StringType,
    StructField,
    StructType,
)

from spark_aoai.exceptions import ConfigurationError

ERROR_TYPE = StructType(
    [
        StructField("status", IntegerType()),
        StructField("code", StringType()),
        StructField("message", StringType()),
        StructField("attempts", IntegerType()),
        StructField("request_id", StringType()),
    ]
)
ERROR_ARROW_TYPE = pa.struct(
    [
        ("status", pa.int32()),
        ("code", pa.string()),
        ("message", pa.string()),
        ("attempts", pa.int32()),
        ("request_id", pa.string()),
    ]
)
USAGE_TYPE = StructType(
    [
        StructField("prompt_tokens", IntegerType()),
        StructField("completion_tokens", IntegerType()),
        StructField("total_tokens", IntegerType()),
    ]
)
USAGE_ARROW_TYPE = pa.struct(
    [("prompt_tokens", pa.int32()), ("completion_tokens", pa.int32()), ("total_tokens", pa.int32())]
)
EMBEDDING_TYPE = ArrayType(FloatType())
MESSAGES_TYPE_HINT = "array<struct<role:string,content:string>>"


def require_column(schema: StructType, name: str | None, param: str) -> DataType:
    """The type of column ``name``; a ConfigurationError naming ``param`` when it is unset or missing."""
    if not name:
        raise ConfigurationError(f"{param} is not set")
    if name not in schema.fieldNames():
        raise ConfigurationError(f"{param}: column {name!r} not found; the DataFrame has {schema.fieldNames()}")
    return schema[name].dataType


def require_new_column(schema: StructType, name: str, param: str) -> None:
    if name in schema.fieldNames():
        raise ConfigurationError(f"{param}: output column {name!r} already exists in the input DataFrame")


def is_messages_type(data_type: DataType) -> bool:
    """Whether ``data_type`` is an array of structs with string ``role`` and ``content`` fields."""
    if not isinstance(data_type, ArrayType) or not isinstance(data_type.elementType, StructType):
        return False
    fields = {f.name: f.dataType for f in data_type.elementType.fields}
    return isinstance(fields.get("role"), StringType) and isinstance(fields.get("content"), StringType)


def vectors_to_arrow(vectors: Sequence[np.ndarray | None]) -> pa.Array:
    """``list<float>`` from float32 vectors (None for null), built from one contiguous buffer."""
    lengths = np.fromiter((0 if v is None else v.shape[0] for v in vectors), dtype=np.int64, count=len(vectors))
    offsets = np.zeros(len(vectors) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    present = [v for v in vectors if v is not None]
    flat = np.concatenate(present).astype(np.float32, copy=False) if present else np.zeros(0, dtype=np.float32)
    mask = pa.array(np.fromiter((v is None for v in vectors), dtype=bool, count=len(vectors)))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat), mask=mask)


def to_arrow(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array:
    return pa.array(list(values), type=arrow_type)
