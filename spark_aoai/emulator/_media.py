"""Images and files in a request: each named in the answer by its media type and a short hash of its bytes.

Chat completions send ``image_url`` parts (``{"url": "data:image/png;base64,..."}`` or an https URL) and
``file`` parts (``{"file_data": "data:application/pdf;base64,...", "filename": ...}``); the Responses API
sends ``input_image`` and ``input_file`` parts, which :func:`chat_part` maps onto those. The emulator fetches
nothing: an https URL is named as it is. A data URL that does not decode is Azure's 400.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any

from spark_aoai.emulator._errors import invalid

_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]+)*?);base64,(?P<data>.*)", re.S)


def _data(url: str, param: str) -> tuple[str, bytes]:
    match = _DATA_URL.fullmatch(url)
    if not match:
        raise invalid(param, f"Invalid '{param}': expected a base64-encoded data URL or an https URL.")
    try:
        raw = base64.b64decode(match["data"], validate=True)
    except (binascii.Error, ValueError):
        raise invalid(param, f"Invalid '{param}': the data URL is not valid base64.") from None
    return match["type"] or "application/octet-stream", raw


def short_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:8]


def describe(url: str, param: str, filename: str | None = None) -> str:
    """``[image/png 1a2b3c4d]`` for a data URL (type and hash of the bytes), ``[https://...]`` for a link.

    >>> describe("data:text/plain;base64,aGk=", "image_url")
    '[text/plain 8f434346]'
    """
    name = f" {filename}" if filename else ""
    if url.startswith(("https://", "http://")):
        return f"[{url}{name}]"
    media_type, raw = _data(url, param)
    return f"[{media_type}{name} {short_hash(raw)}]"


def part_description(part: dict[str, Any]) -> str | None:
    """What an image or file part of a chat message is, for the answer (None for text and unknown parts)."""
    kind = part.get("type")
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str) or not url:
            raise invalid("image_url", "Missing required parameter: 'image_url.url'.", "missing_required_parameter")
        return describe(url, "image_url.url")
    if kind == "file":
        file: dict[str, Any] = v if isinstance(v := part.get("file"), dict) else {}
        if file.get("file_data"):
            return describe(str(file["file_data"]), "file.file_data", file.get("filename"))
        if file.get("file_id"):
            return f"[{file['file_id']}]"
        raise invalid(
            "file", "Missing required parameter: 'file.file_data' or 'file.file_id'.", "missing_required_parameter"
        )
    return None


def chat_part(part: Any) -> Any:
    """A Responses API content part as the chat-completions part it stands for."""
    if not isinstance(part, dict):
        return part
    kind = part.get("type")
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": part.get("text", "")}
    if kind == "input_image":
        url = part.get("image_url") or part.get("file_id")
        if not url:
            raise invalid("input_image", "Missing required parameter: 'image_url'.", "missing_required_parameter")
        return {"type": "image_url", "image_url": {"url": url, "detail": part.get("detail", "auto")}}
    if kind == "input_file":
        if part.get("file_url"):
            return {"type": "file", "file": {"file_id": part["file_url"]}}
        return {"type": "file", "file": {k: part[k] for k in ("file_data", "file_id", "filename") if k in part}}
    return part
