"""Output schemas in: a Spark DDL string, Spark's JSON form of a ``StructType``, a JSON schema (pydantic's too),
each read into a ``Shape`` (``_structured``) without pyspark; ``schema_text`` is the ``outputSchema`` converter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from spark_aoai._planning.structured import Shape, StructuredOutput, obj
from spark_aoai.exceptions import ConfigurationError

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
