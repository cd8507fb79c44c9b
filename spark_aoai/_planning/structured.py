"""Typed structured output: an output schema as a ``Shape``, its strict JSON schema, and answers converted.

A schema (read by ``_schemas`` from DDL, a ``StructType``, a JSON-schema dict or a pydantic model) is one
``Shape`` tree, from which come the strict ``json_schema``
response format (every property required, nullable as ``["type", "null"]``, ``additionalProperties: false``),
the Arrow type of the output column, and ``convert``: an answer's JSON into values that Arrow type holds, or a
``MisfitError`` saying where it does not fit. Free of pyspark: the executors convert answers with it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from spark_aoai._core import bounded_json as untrusted_json

SCALARS = ("string", "boolean", "integer", "number", "decimal", "date", "timestamp")


class MisfitError(ValueError):
    """An answer that does not fit the output schema; the message says where (``$.score: expected ...``)."""


@dataclass(frozen=True)
class Shape:
    """One node of an output schema: a scalar kind, an ``array`` of ``items`` or an ``object`` of ``fields``."""

    kind: str
    nullable: bool = True
    items: Shape | None = None
    fields: tuple[tuple[str, Shape], ...] = ()
    enum: tuple[str, ...] | None = None
    bits: int = 64  # integer: 8/16/32/64; number: 32/64
    precision: int = 10  # decimal
    scale: int = 0
    description: str | None = None

    # -- what the service is asked for ---------------------------------------------------------------------

    def json_schema(self) -> dict[str, Any]:
        """The strict-mode JSON schema of this node."""
        out: dict[str, Any]
        if self.kind == "object":
            out = {
                "type": "object",
                "properties": {name: shape.json_schema() for name, shape in self.fields},
                "required": [name for name, _ in self.fields],
                "additionalProperties": False,
            }
        elif self.kind == "array":
            assert self.items is not None
            out = {"type": "array", "items": self.items.json_schema()}
        elif self.kind in ("date", "timestamp"):
            out = {"type": "string", "format": "date" if self.kind == "date" else "date-time"}
        else:
            out = {"type": "number" if self.kind == "decimal" else self.kind}
        if self.enum is not None:
            out["enum"] = [*self.enum, None] if self.nullable else list(self.enum)
        if self.nullable:
            out["type"] = [out["type"], "null"]
        if self.description:
            out["description"] = self.description
        return out

    # -- what the output column holds ----------------------------------------------------------------------

    def arrow_type(self) -> pa.DataType:
        if self.kind == "object":
            return pa.struct([pa.field(name, s.arrow_type(), nullable=s.nullable) for name, s in self.fields])
        if self.kind == "array":
            assert self.items is not None
            return pa.list_(pa.field("element", self.items.arrow_type(), nullable=self.items.nullable))
        if self.kind == "integer":
            return {8: pa.int8(), 16: pa.int16(), 32: pa.int32()}.get(self.bits, pa.int64())
        if self.kind == "number":
            return pa.float32() if self.bits == 32 else pa.float64()
        simple = {
            "string": pa.string(),
            "boolean": pa.bool_(),
            "date": pa.date32(),
            "timestamp": pa.timestamp("us", "UTC"),
        }
        if self.kind in simple:
            return simple[self.kind]
        return pa.decimal128(self.precision, self.scale)

    # -- an answer's value, converted ----------------------------------------------------------------------

    def convert(self, value: Any, path: str = "$") -> Any:
        """``value`` (parsed JSON) as a Python value of ``arrow_type()``; ``MisfitError`` naming the path if not."""
        if value is None:
            if self.nullable:
                return None
            raise MisfitError(f"{path} is null but must have a value")
        kind = self.kind
        if kind == "object":
            if not isinstance(value, Mapping):
                raise MisfitError(f"{path}: expected an object, got {_shown(value)}")
            missing = [name for name, _ in self.fields if name not in value]
            if missing:
                raise MisfitError(f"{path}: missing field(s) {', '.join(missing)}")
            return {name: shape.convert(value[name], f"{path}.{name}") for name, shape in self.fields}
        if kind == "array":
            if not isinstance(value, list):
                raise MisfitError(f"{path}: expected an array, got {_shown(value)}")
            assert self.items is not None
            return [self.items.convert(item, f"{path}[{i}]") for i, item in enumerate(value)]
        return self._scalar(value, path)

    def _scalar(self, value: Any, path: str) -> Any:
        kind = self.kind
        if kind == "string" and isinstance(value, str):
            if self.enum is not None and value not in self.enum:
                raise MisfitError(f"{path}: {value!r} is not one of {list(self.enum)}")
            return value
        if kind == "boolean" and isinstance(value, bool):
            return value
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if numeric and not _finite(value):
            raise MisfitError(f"{path}: {_shown(value)} is not a finite number")
        if kind == "integer" and numeric and float(value).is_integer():
            number = int(value)
            if not -(2 ** (self.bits - 1)) <= number < 2 ** (self.bits - 1):
                raise MisfitError(f"{path}: {number} does not fit a {self.bits}-bit integer")
            return number
        if kind == "number" and numeric:
            return float(value)
        if kind == "decimal" and numeric:
            return self._decimal(value, path)
        if kind == "date" and isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                raise MisfitError(f"{path}: {value!r} is not an ISO date (YYYY-MM-DD)") from None
        if kind == "timestamp" and isinstance(value, str):
            try:
                moment = dt.datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
            except ValueError:
                raise MisfitError(f"{path}: {value!r} is not an ISO 8601 date-time") from None
            return moment.replace(tzinfo=dt.timezone.utc) if moment.tzinfo is None else moment
        expected = {"decimal": "number", "date": "ISO date string", "timestamp": "ISO date-time string"}
        raise MisfitError(f"{path}: expected {expected.get(kind, 'a ' + kind)}, got {_shown(value)}")

    def _decimal(self, value: int | float, path: str) -> decimal.Decimal:
        try:
            exact = decimal.Decimal(str(value)).quantize(
                decimal.Decimal(1).scaleb(-self.scale), decimal.ROUND_HALF_EVEN
            )
        except decimal.InvalidOperation:  # more digits than any decimal column holds
            exact = None
        if exact is None or len(exact.as_tuple().digits) > self.precision:
            raise MisfitError(f"{path}: {value} does not fit decimal({self.precision},{self.scale})")
        return exact


def _finite(value: int | float) -> bool:
    """Whether a JSON number is one a double holds (JSON has no NaN or Infinity; 1e400 overflows)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def obj(fields: list[tuple[str, Shape]]) -> Shape:
    return Shape("object", nullable=False, fields=tuple(fields))


@dataclass(frozen=True)
class StructuredOutput:
    """What a chat operation asks for and how it reads the answer: a root object, optionally unwrapped to one
    of its fields (``ai.classify`` answers ``{"label": ...}`` and its column holds the label)."""

    shape: Shape
    name: str = "output"
    unwrap: str | None = None
    as_map: bool = False  # a map<string,string> column of the (string) fields: field names vary per row

    def response_format(self) -> dict[str, Any]:
        return {
            "type": "json_schema",
            "json_schema": {"name": self.name, "schema": self.shape.json_schema(), "strict": True},
        }

    def column_shape(self) -> Shape:
        if self.unwrap is None:
            return self.shape
        return dict(self.shape.fields)[self.unwrap]

    def arrow_type(self) -> pa.DataType:
        if self.as_map:
            return pa.map_(pa.string(), pa.string())
        return self.column_shape().arrow_type()

    def parse(self, text: str | None) -> Any:
        """The answer's text as the output column's value; ``MisfitError`` when it is not JSON or does not fit."""
        raw = (text or "").strip()
        if raw.startswith("```"):  # a fenced answer: the JSON inside
            raw = raw.strip("`").removeprefix("json").strip()
        try:
            value = untrusted_json.loads(raw)
        except ValueError as exc:
            raise MisfitError(f"the answer is not JSON ({exc})") from None
        converted = self.shape.convert(value)
        if self.as_map:
            return list(converted.items())
        return converted if self.unwrap is None else converted[self.unwrap]
