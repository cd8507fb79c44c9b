"""Spark-side types: output fields' Spark types derived from their Arrow declarations, and input checks."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from pyspark.sql.pandas.types import from_arrow_type
from pyspark.sql.types import ArrayType, DataType, StringType, StructType

from spark_aoai.exceptions import ConfigurationError

MESSAGES_TYPE_HINT = "array<struct<role:string,content:string>>"


def spark_type(arrow_type: pa.DataType) -> DataType:
    return from_arrow_type(arrow_type)


def require_column(schema: StructType, name: str | None, param: str) -> DataType:
    """The type of column ``name``; a ConfigurationError naming ``param`` when it is unset or missing."""
    if not name:
        raise ConfigurationError(f"{param} is not set")
    if name not in schema.fieldNames():
        raise ConfigurationError(f"{param}: column {name!r} not found; the DataFrame has {schema.fieldNames()}")
    return schema[name].dataType


def require_string(data_type: DataType, name: str, param: str) -> None:
    if not isinstance(data_type, StringType):
        raise ConfigurationError(f"{param}: column {name!r} is {data_type.simpleString()}, not string")


def require_new_column(schema: StructType, name: str, param: str) -> None:
    if name in schema.fieldNames():
        raise ConfigurationError(
            f"{param}: output column {name!r} already exists in the input DataFrame; set {param} to another name "
            "(or drop the column first)"
        )


def require_template_columns(schema: StructType, template: Any, param: str) -> tuple[str, ...]:
    """The top-level columns ``template`` reads; a ConfigurationError naming a placeholder nothing matches."""
    names = schema.fieldNames()
    for placeholder in template.fields:
        if placeholder in names:
            continue
        head, _, rest = placeholder.partition(".")
        if head not in names:
            raise ConfigurationError(f"{param}: {{{placeholder}}} names no column; the DataFrame has {names}")
        data_type: DataType = schema[head].dataType
        path = head
        for part in rest.split(".") if rest else ():
            if not isinstance(data_type, StructType) or part not in data_type.fieldNames():
                raise ConfigurationError(
                    f"{param}: {{{placeholder}}}: {path} is {data_type.simpleString()}, without a field {part!r}"
                )
            data_type, path = data_type[part].dataType, f"{path}.{part}"
    return tuple(template.columns(names))


def is_messages_type(data_type: DataType) -> bool:
    """Whether ``data_type`` is an array of structs with string ``role`` and ``content`` fields."""
    if not isinstance(data_type, ArrayType) or not isinstance(data_type.elementType, StructType):
        return False
    fields = {f.name: f.dataType for f in data_type.elementType.fields}
    return isinstance(fields.get("role"), StringType) and isinstance(fields.get("content"), StringType)
