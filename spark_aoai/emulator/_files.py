"""The Files API's store: uploaded batch input files and the output and error files batches write.

Files live in memory for the emulator's lifetime (or until deleted). An upload is ``multipart/form-data`` with
``purpose`` (only ``batch`` is served) and ``file`` (the JSONL bytes and a filename), as the openai SDK sends
it; one over :attr:`BatchSettings.max_bytes` is refused with OpenAI's ``File is too large.`` 400. The file
object is OpenAI's ``FileObject`` (``status`` is ``processed`` at once).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from email.message import Message
from typing import Any

from spark_aoai.emulator._errors import bad_request, file_too_large, invalid, no_such
from spark_aoai.emulator._settings import BatchSettings

PURPOSES = ("batch",)
OUTPUT_PURPOSE = "batch_output"
# expires_after.seconds: OpenAI's bounds (one hour to 30 days)
MIN_EXPIRY_SECONDS, MAX_EXPIRY_SECONDS = 3600, 2_592_000


@dataclass(frozen=True)
class StoredFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int
    expires_at: int | None = None

    def object(self) -> dict[str, Any]:
        """The file object of the Files API (openai's ``FileObject``)."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


class FileStore:
    """Files by id, behind a lock (handler threads upload and read; batch workers write outputs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, StoredFile] = {}

    def add(self, filename: str, purpose: str, data: bytes, expires_at: int | None = None) -> StoredFile:
        stored = StoredFile(f"file-{uuid.uuid4().hex}", filename, purpose, data, int(time.time()), expires_at)
        with self._lock:
            self._files[stored.id] = stored
        return stored

    def get(self, file_id: str) -> StoredFile:
        with self._lock:
            stored = self._files.get(file_id)
        if stored is None:
            raise no_such("file", file_id)
        return stored

    def delete(self, file_id: str) -> dict[str, Any]:
        with self._lock:
            if self._files.pop(file_id, None) is None:
                raise no_such("file", file_id)
        return {"id": file_id, "object": "file", "deleted": True}

    def newest_first(self, purpose: str | None = None) -> list[StoredFile]:
        with self._lock:
            files = [f for f in self._files.values() if purpose is None or f.purpose == purpose]
        return files[::-1]  # dicts keep insertion order: the newest last


def upload(store: FileStore, limits: BatchSettings, content_type: str, raw: bytes) -> StoredFile:
    """Store the ``file`` of a multipart upload, refusing what the Files API refuses."""
    fields = parse_form(content_type, raw)
    purpose = fields.get("purpose", (None, b""))[1].decode("utf-8", "replace")
    if purpose not in PURPOSES:
        raise invalid("purpose", f"Invalid value for 'purpose': '{purpose}'. The emulator serves only 'batch' files.")
    filename, data = fields.get("file", (None, b""))
    if filename is None:
        raise invalid(
            "file", "Missing required parameter: 'file' (a file part with a filename).", "missing_required_parameter"
        )
    if len(data) > limits.max_bytes:
        raise file_too_large(len(data), limits.max_bytes)
    return store.add(filename, purpose, data, _expires_at(fields))


def _expires_at(fields: dict[str, tuple[str | None, bytes]]) -> int | None:
    """``expires_after[anchor]=created_at`` and ``expires_after[seconds]``, as the SDK sends them."""
    seconds = fields.get("expires_after[seconds]")
    if seconds is None:
        return None
    anchor = fields.get("expires_after[anchor]", (None, b"created_at"))[1]
    try:
        value = int(seconds[1])
    except ValueError:
        value = -1
    if anchor != b"created_at" or not MIN_EXPIRY_SECONDS <= value <= MAX_EXPIRY_SECONDS:
        raise invalid(
            "expires_after",
            f"Invalid 'expires_after': anchor 'created_at' and {MIN_EXPIRY_SECONDS}-{MAX_EXPIRY_SECONDS} seconds.",
        )
    return int(time.time()) + value


def parse_form(content_type: str, raw: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a ``multipart/form-data`` body: name -> (filename or None, bytes)."""
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str) or not boundary:
        raise bad_request("The request must be multipart/form-data with a boundary.", "invalid_request_error")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in raw.split(b"--" + boundary.encode("latin-1"))[1:]:
        if part.startswith(b"--"):
            break  # the closing delimiter
        head, separator, body = part.partition(b"\r\n\r\n")
        if not separator:
            continue
        disposition = Message()
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-disposition":
                disposition["content-disposition"] = value.strip()
        field = disposition.get_param("name", header="content-disposition")
        if isinstance(field, str):
            fields[field] = (disposition.get_filename(), body[:-2] if body.endswith(b"\r\n") else body)
    return fields
