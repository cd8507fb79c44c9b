"""Typed structured output: an output schema as a ``Shape``, its strict JSON schema, and answers converted.

A schema arrives as a Spark DDL string, a Spark ``StructType`` (as its JSON form), a JSON-schema dict or a
pydantic model's JSON schema; each becomes one ``Shape`` tree, from which come the strict ``json_schema``
response format (every property required, nullable as ``["type", "null"]``, ``additionalProperties: false``),
the Arrow type of the output column, and ``convert``: an answer's JSON into values that Arrow type holds, or a
``MisfitError`` saying where it does not fit. Free of pyspark: the executors convert answers with it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa

from spark_aoai.exceptions import ConfigurationError

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
        exact = decimal.Decimal(str(value)).quantize(decimal.Decimal(1).scaleb(-self.scale), decimal.ROUND_HALF_EVEN)
        if len(exact.as_tuple().digits) > self.precision:
            raise MisfitError(f"{path}: {value} does not fit decimal({self.precision},{self.scale})")
        return exact


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
            value = json.loads(raw)
        except ValueError as exc:
            raise MisfitError(f"the answer is not JSON ({exc})") from None
        converted = self.shape.convert(value)
        if self.as_map:
            return list(converted.items())
        return converted if self.unwrap is None else converted[self.unwrap]


# -- schemas in: DDL, Spark's JSON form of a StructType, JSON schema -------------------------------------------

_SPARK_NAMES: dict[str, str | tuple[str, int]] = {
    "string": "string", "varchar": "string", "char": "string", "boolean": "boolean", "bool": "boolean",
    "tinyint": ("integer", 8), "byte": ("integer", 8), "smallint": ("integer", 16), "short": ("integer", 16),
    "int": ("integer", 32), "integer": ("integer", 32), "bigint": ("integer", 64), "long": ("integer", 64),
    "float": ("number", 32), "real": ("number", 32), "double": ("number", 64), "date": "date",
    "timestamp": "timestamp", "timestamp_ltz": "timestamp", "decimal": "decimal", "dec": "decimal",
    "numeric": "decimal",
}  # fmt: skip


def _unsupported(path: str, type_text: str) -> ConfigurationError:
    return ConfigurationError(
        f"outputSchema: field {path!r} is {type_text}, which strict structured output cannot express; supported "
        "are string, boolean, integers, float/double, decimal, date, timestamp, arrays and structs "
        "(a map can be an array of key/value structs)"
    )


def _scalar_named(name: str, path: str, nullable: bool, args: tuple[int, ...] = ()) -> Shape:
    found = _SPARK_NAMES.get(name.lower())
    if found is None:
        raise _unsupported(path, name)
    if found == "decimal":
        precision, scale = (*args, *(10, 0)[len(args) :])[:2]
        return Shape("decimal", nullable, precision=precision, scale=scale)
    if isinstance(found, tuple):
        return Shape(found[0], nullable, bits=found[1])
    return Shape(str(found), nullable)


_TOKEN = re.compile(r"\s*(`(?:[^`]|``)*`|[A-Za-z_][\w$]*|\d+|'(?:[^'\\]|\\.)*'|[<>(),:])")


class _DDL:
    """A recursive-descent reader of Spark DDL: ``name type [NOT NULL] [COMMENT '...'], ...``."""

    def __init__(self, text: str) -> None:
        self.tokens: list[str] = []
        position = 0
        while position < len(text.rstrip()):
            match = _TOKEN.match(text, position)
            if not match:
                raise ConfigurationError(f"outputSchema: cannot read the DDL at {text[position : position + 20]!r}")
            self.tokens.append(match.group(1))
            position = match.end()
        self.at = 0

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token.lower() != expected):
            raise ConfigurationError(f"outputSchema: expected {expected or 'more'} in the DDL, got {token!r}")
        self.at += 1
        return token

    def fields(self, path: str, closing: str | None) -> list[tuple[str, Shape]]:
        out = []
        while True:
            name = self.take()
            name = name[1:-1].replace("``", "`") if name.startswith("`") else name
            if self.peek() == ":":
                self.take()
            field_path = f"{path}.{name}" if path else name
            shape_type = self.type(field_path)
            nullable = True
            if (self.peek() or "").lower() == "not":
                self.take(), self.take("null")
                nullable = False
            description = None
            if (self.peek() or "").lower() == "comment":
                self.take()
                description = self.take()[1:-1]
            out.append((name, replace(shape_type, nullable=nullable, description=description)))
            if self.peek() == ",":
                self.take()
                continue
            if self.peek() == closing:
                return out
            raise ConfigurationError(f"outputSchema: unexpected {self.peek()!r} after field {field_path!r}")

    def type(self, path: str) -> Shape:
        name = self.take().lower()
        if name == "array":
            self.take("<")
            items = self.type(f"{path}[]")
            self.take(">")
            return Shape("array", items=items)
        if name == "struct":
            self.take("<")
            fields = self.fields(path, ">")
            self.take(">")
            return Shape("object", fields=tuple(fields))
        if name in ("map", "binary", "interval", "variant", "void", "timestamp_ntz"):
            raise _unsupported(path, name)
        args: tuple[int, ...] = ()
        if self.peek() == "(":
            self.take()
            numbers = [int(self.take())]
            while self.peek() == ",":
                self.take()
                numbers.append(int(self.take()))
            self.take(")")
            args = tuple(numbers)
        return _scalar_named(name, path, True, args)


def from_ddl(text: str) -> Shape:
    """``"sentiment string, score double, topics array<string>"`` as a root object."""
    reader = _DDL(
        text.strip().removeprefix("struct<").removesuffix(">") if text.strip().startswith("struct<") else text
    )
    fields = reader.fields("", None)
    return obj(fields)


def from_spark_json(node: Any, path: str = "", nullable: bool = True) -> Shape:
    """A Spark type in its JSON form (``StructType.jsonValue()``), read without pyspark."""
    if isinstance(node, str):
        match = re.fullmatch(r"decimal\((\d+),\s*(\d+)\)", node)
        if match:
            return Shape("decimal", nullable, precision=int(match.group(1)), scale=int(match.group(2)))
        return _scalar_named(node, path, nullable)
    kind = node.get("type")
    if kind == "struct":
        fields = []
        for f in node["fields"]:
            sub = f"{path}.{f['name']}" if path else f["name"]
            shape = from_spark_json(f["type"], sub, bool(f.get("nullable", True)))
            comment = (f.get("metadata") or {}).get("comment")
            fields.append((f["name"], replace(shape, description=comment) if comment else shape))
        return Shape("object", nullable, fields=tuple(fields))
    if kind == "array":
        return Shape("array", nullable, items=from_spark_json(node["elementType"], f"{path}[]", node["containsNull"]))
    raise _unsupported(path, str(kind))


def from_json_schema(schema: Mapping[str, Any], path: str = "", defs: Mapping[str, Any] | None = None) -> Shape:
    """A JSON schema (the subset strict mode allows, pydantic's ``$defs``/``anyOf`` nullables included)."""
    defs = defs if defs is not None else {**schema.get("$defs", {}), **schema.get("definitions", {})}
    if "$ref" in schema:
        return from_json_schema(defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {}), path, defs)
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        real = [o for o in options if o.get("type") != "null"]
        if len(real) != 1:
            raise _unsupported(path or "$", "a union of several types")
        inner = from_json_schema(real[0], path, defs)
        return replace(
            inner, nullable=len(real) < len(options), description=schema.get("description", inner.description)
        )
    kind = schema.get("type")
    nullable = False
    if isinstance(kind, list):
        nullable = "null" in kind
        rest = [k for k in kind if k != "null"]
        if len(rest) != 1:
            raise _unsupported(path or "$", f"of types {kind}")
        kind = rest[0]
    if kind is None and "properties" in schema:
        kind = "object"
    description = schema.get("description")
    if kind == "object":
        fields = tuple(
            (name, from_json_schema(sub, f"{path}.{name}" if path else name, defs))
            for name, sub in (schema.get("properties") or {}).items()
        )
        if not fields:
            raise _unsupported(path or "$", "an object without properties")
        return Shape("object", nullable, fields=fields, description=description)
    if kind == "array":
        return Shape(
            "array",
            nullable,
            items=from_json_schema(schema.get("items") or {}, f"{path}[]", defs),
            description=description,
        )
    if kind == "string":
        fmt = {"date": "date", "date-time": "timestamp"}.get(schema.get("format", ""), "string")
        enum = schema.get("enum")
        enum_values = tuple(str(e) for e in enum if e is not None) if enum else None
        return Shape(fmt, nullable, enum=enum_values if fmt == "string" else None, description=description)
    if kind in ("integer", "number", "boolean"):
        return Shape(kind, nullable, description=description)
    raise _unsupported(path or "$", f"JSON type {kind!r}")


def output_from(text: str, name: str = "output") -> StructuredOutput:
    """The ``outputSchema`` Param's stored text (DDL, Spark JSON or JSON schema) as a ``StructuredOutput``."""
    stripped = text.strip()
    if stripped.startswith("{"):
        parsed = json.loads(stripped)
        if parsed.get("type") == "struct" and "fields" in parsed:
            shape = from_spark_json(parsed)
        else:
            shape = from_json_schema(parsed)
            name = str(parsed.get("title") or name)
    else:
        shape = from_ddl(stripped)
    if shape.kind != "object":
        raise ConfigurationError("outputSchema: the root must be an object (a struct)")
    return StructuredOutput(replace(shape, nullable=False), re.sub(r"[^\w-]", "_", name)[:64])


def schema_text(value: Any) -> str:
    """The ``outputSchema`` Param's converter: a DDL string, a StructType, a JSON-schema dict or a pydantic
    model class, stored as text (DDL as given; the others as JSON) and checked at once."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, Mapping):
        text = json.dumps(dict(value))
    elif hasattr(value, "jsonValue") and hasattr(value, "fields"):  # a pyspark StructType
        text = json.dumps(value.jsonValue())
    elif isinstance(value, type) and hasattr(value, "model_json_schema"):  # a pydantic model
        text = json.dumps(value.model_json_schema())
    else:
        raise TypeError(f"expected a DDL string, StructType, JSON-schema dict or pydantic model, got {value!r}")
    output_from(text)
    return text
