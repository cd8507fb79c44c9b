"""Images and PDFs in a chat request: media types sniffed from the bytes, data URLs, and the content parts
each API takes. Pure Python (no pyspark): it runs on the executors.

A row's item carries its media next to its text (``Media.split``); the operation turns the text into
messages as before and ``attach`` puts the row's image and file after the text of the last user message,
as chat-completions parts (``image_url``, ``file``). The Responses API's wire module maps those onto
``input_text`` / ``input_image`` / ``input_file`` with :func:`responses_content`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spark_aoai._core import constants as C
from spark_aoai._core.contract import InvalidInputError

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
PDF_TYPE = "application/pdf"
DEFAULT_FILENAME = "document.pdf"


def sniff_image(data: bytes) -> str | None:
    """The image media type the bytes start with (PNG, JPEG, GIF, WebP), or None.

    >>> sniff_image(b"\\x89PNG\\r\\n\\x1a\\n...")
    'image/png'
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def is_pdf(data: bytes) -> bool:
    return data.startswith(b"%PDF-")


def data_url(media_type: str, data: bytes) -> str:
    """``data:<type>;base64,<data>``.

    >>> data_url("image/png", b"hi")
    'data:image/png;base64,aGk='
    """
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def _binary(value: Any) -> bytes | None:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return None


def _check_size(size: int, what: str, max_bytes: int) -> None:
    if size > max_bytes:
        raise InvalidInputError(f"the {what} is {size} bytes, over maxInputBytes ({max_bytes})")


def _data_url_head(url: str) -> tuple[str, bytes]:
    """The declared type of a base64 data URL and the first bytes of its data (enough to sniff them)."""
    header, comma, payload = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise InvalidInputError("the image data URL is not base64 (expected data:image/...;base64,...)")
    try:
        head = base64.b64decode(payload[:16], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError("the image data URL is not valid base64") from None
    return header[len("data:") : -len(";base64")].split(";")[0].lower(), head


def image_url(value: Any, max_bytes: int) -> str:
    """The ``image_url`` of an image column's value: bytes as a data URL, or an https / data URL string."""
    raw = _binary(value)
    if raw is not None:
        _check_size(len(raw), "image", max_bytes)
        media_type = sniff_image(raw)
        if media_type is None:
            raise InvalidInputError(f"the image is not PNG, JPEG, GIF or WebP (starts with {raw[:8]!r})")
        return data_url(media_type, raw)
    if not isinstance(value, str):
        raise InvalidInputError(f"the image must be bytes or a URL string, got a {type(value).__name__}")
    if value.startswith("https://"):
        return value
    if not value.startswith("data:"):
        raise InvalidInputError(f"the image URL must start with https:// or data:, got {value[:40]!r}")
    _check_size(len(value) * 3 // 4, "image", max_bytes)
    declared, head = _data_url_head(value)
    sniffed = sniff_image(head)
    if declared not in IMAGE_TYPES or sniffed != declared:
        raise InvalidInputError(f"the image data URL is {declared or 'untyped'}, with {sniffed or 'unknown'} bytes")
    return value


def file_data(value: Any, max_bytes: int) -> str:
    """The ``file_data`` (a PDF data URL) of a file column's value."""
    raw = _binary(value)
    if raw is None:
        raise InvalidInputError(f"the file must be bytes, got a {type(value).__name__}")
    _check_size(len(raw), "file", max_bytes)
    if not is_pdf(raw):
        raise InvalidInputError(f"the file is not a PDF (starts with {raw[:8]!r})")
    return data_url(PDF_TYPE, raw)


@dataclass(frozen=True)
class Attachments:
    """One row's media, ready to send: an image URL and a PDF data URL (either may be None)."""

    image: str | None = None
    file: str | None = None

    def parts(self) -> list[dict[str, Any]]:
        """The chat-completions content parts of the row's media."""
        parts: list[dict[str, Any]] = []
        if self.image is not None:
            parts.append({"type": "image_url", "image_url": {"url": self.image}})
        if self.file is not None:
            parts.append({"type": "file", "file": {"filename": DEFAULT_FILENAME, "file_data": self.file}})
        return parts

    def attach(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``messages`` with the media after the text of the last user message (unchanged without media)."""
        parts = self.parts()
        if not parts:
            return messages
        last = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=len(messages) - 1)
        text = messages[last]["content"]
        content = [{"type": "text", "text": text}, *parts] if isinstance(text, str) else [*text, *parts]
        return [*messages[:last], {**messages[last], "content": content}, *messages[last + 1 :]]


@dataclass(frozen=True)
class Media:
    """Where a row's media is: the item is a dict of the row's columns; ``prompt_key`` names the text (a
    prompt or messages; None with a template, which reads the whole dict), ``image_key`` / ``file_key`` the
    media columns. A null image or file sends the text alone."""

    prompt_key: str | None
    image_key: str | None = None
    file_key: str | None = None
    max_bytes: int = C.MAX_INPUT_BYTES

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(k for k in (self.image_key, self.file_key) if k)

    def split(self, item: Any) -> tuple[Any, Attachments]:
        """The row's text item and its attachments; ``InvalidInputError`` for media that cannot be sent."""
        if not isinstance(item, Mapping):
            raise InvalidInputError(f"with imageCol or fileCol the item is the row's fields, got {type(item).__name__}")
        for key in self.columns:
            if key not in item:
                raise InvalidInputError(f"the row has no field {key!r} (imageCol / fileCol)")
        image = item.get(self.image_key) if self.image_key else None
        file = item.get(self.file_key) if self.file_key else None
        attachments = Attachments(
            image=None if image is None else image_url(image, self.max_bytes),
            file=None if file is None else file_data(file, self.max_bytes),
        )
        if self.prompt_key is None:
            return item, attachments
        if self.prompt_key not in item:
            raise InvalidInputError(f"the row has no field {self.prompt_key!r} (the prompt)")
        return item[self.prompt_key], attachments


def responses_part(part: Any) -> Any:
    """A chat-completions content part as the Responses API's (``input_text``, ``input_image``, ``input_file``)."""
    if not isinstance(part, Mapping):
        return part
    kind = part.get("type")
    if kind == "text":
        return {"type": "input_text", "text": part.get("text", "")}
    if kind == "image_url":
        image = part.get("image_url") or {}
        return {"type": "input_image", "image_url": image.get("url"), "detail": image.get("detail", "auto")}
    if kind == "file":
        file = part.get("file") or {}
        return {"type": "input_file", **{k: file[k] for k in ("filename", "file_data", "file_id") if k in file}}
    return dict(part)


def responses_content(content: Any) -> Any:
    """A message's content for the Responses API: a string as it is, a list of parts mapped part by part."""
    return [responses_part(p) for p in content] if isinstance(content, list) else content
