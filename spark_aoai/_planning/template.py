"""Prompt templates over a row's columns: ``"Summarise {title} in {lang}: {body}"``.

``{column}`` and ``{struct.field}`` are placeholders; ``{{`` and ``}}`` are literal braces. A template is parsed
once on the driver (where unknown columns are refused, naming them) and rendered per row on the executor from
a dict of the referenced columns' values. Free of pyspark.
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spark_aoai._core.contract import InvalidInputError
from spark_aoai.exceptions import ConfigurationError


@dataclass(frozen=True)
class Template:
    """A parsed template: literal text and placeholders, in order."""

    text: str
    parts: tuple[tuple[str, str | None], ...]  # (literal text before, placeholder or None)

    @classmethod
    def parse(cls, text: str, param: str = "promptTemplate") -> Template:
        """Parse ``text``; a lone brace or a format spec is a ``ConfigurationError`` naming ``param``.

        >>> Template.parse("Hi {name}, {{literal}}").fields
        ('name',)
        """
        try:
            pieces = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise ConfigurationError(f"{param}: {exc} in {text!r}; write {{{{ and }}}} for literal braces") from None
        parts = []
        for literal, name, spec, conversion in pieces:
            if name is not None and (spec or conversion):
                raise ConfigurationError(
                    f"{param}: placeholder {{{name}:{spec}}} has a format spec or conversion; only {{column}} and "
                    "{struct.field} are supported (write {{ and }} for literal braces)"
                )
            if name is not None and not name.strip():
                raise ConfigurationError(f"{param}: empty placeholder {{}}; name a column, e.g. {{text}}")
            parts.append((literal, name))
        return cls(text, tuple(parts))

    @property
    def fields(self) -> tuple[str, ...]:
        """The placeholders, each once, in order of appearance."""
        return tuple(dict.fromkeys(name for _, name in self.parts if name is not None))

    def columns(self, available: list[str]) -> tuple[str, ...]:
        """The top-level columns the placeholders read: ``a.b`` reads column ``a.b`` if there is one, else ``a``."""
        return tuple(dict.fromkeys(_column_of(name, available) for name in self.fields))

    def render(self, row: Mapping[str, Any], null_placeholder: str | None = None) -> str:
        """The text for one row; a null value is ``InvalidInputError`` unless ``null_placeholder`` is set."""
        out = []
        for literal, name in self.parts:
            out.append(literal)
            if name is None:
                continue
            value = lookup(row, name)
            if value is None:
                if null_placeholder is None:
                    raise InvalidInputError(f"the template's {{{name}}} is null (set nullPlaceholder to allow it)")
                out.append(null_placeholder)
            else:
                out.append(_text(value))
        return "".join(out)


def _column_of(name: str, available: list[str]) -> str:
    return name if name in available or "." not in name else name.split(".", 1)[0]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def lookup(row: Mapping[str, Any], name: str) -> Any:
    """``row[name]``, or for ``a.b.c`` the field ``b.c`` of struct ``a``; None for a null on the way.

    A name that no row dict holds is an ``InvalidInputError`` (a UDF's struct without that field).
    """
    if name in row:
        return None if _missing(row[name]) else row[name]
    head, _, rest = name.partition(".")
    if not rest or head not in row:
        raise InvalidInputError(f"the template's {{{name}}} is not among the input fields {sorted(row)}")
    value = row[head]
    if _missing(value):
        return None
    if not isinstance(value, Mapping):
        if hasattr(value, "asDict"):
            value = value.asDict()
        else:
            raise InvalidInputError(f"the template's {{{name}}}: {head} is not a struct")
    return lookup(value, rest)


def _text(value: Any) -> str:
    """How a value reads in a prompt: strings as they are, structs and arrays as JSON, others via ``str``."""
    if isinstance(value, str):
        return value
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)
