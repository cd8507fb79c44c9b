"""The persistent response cache (``cacheDir``): the store behind the engine's lookup/store seam.

Layout: ``{cacheDir}/spark_aoai-cache-v1/{k[0:2]}/{k[2:4]}/{k}.json``, one file per answer, content-addressed by
``cache_key`` (sha256 of the route, the deployment and the canonical JSON of the request body; never a
credential or header). Hence:

- a lookup opens at most one small file: its cost does not grow with the cache, and an executor holds nothing
  of the cache in memory (only the answers waiting to be written);
- writers never coordinate: two tasks (a retry, a speculative copy) writing one key write the same bytes, and
  each file appears whole (written to a temporary name, then renamed);
- a task writes its answers in increments (``CACHE_FLUSH_ANSWERS`` answers or ``CACHE_FLUSH_SECONDS``), so a
  killed task loses at most its last increment; ``close`` writes the rest.

Paths are plain files (a local disk, or a FUSE mount of a lakehouse: ``/lakehouse/default/Files/...`` on
Fabric, ``/dbfs/...`` on Databricks), so executors need no JVM. A URI with a scheme (``abfss://``, ``s3://``)
goes through ``fsspec`` when it and its protocol package are installed. Errors are never stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spark_aoai import _constants as C
from spark_aoai._contract import Route, Unit
from spark_aoai._engine import NoHooks
from spark_aoai.exceptions import ConfigurationError


def cache_key(route: Route, deployment: str, payload: dict[str, Any]) -> str:
    """The hex sha256 naming one answer: route path, deployment and the request body with sorted keys."""
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(f"{route.path}\n{deployment}\n".encode())
    digest.update(body.encode("utf-8"))
    return digest.hexdigest()


class LocalFiles:
    """Files under a local or FUSE-mounted directory."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.made: set[str] = set()

    def read(self, name: str) -> bytes | None:
        try:
            with open(os.path.join(self.root, name), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        path = os.path.join(self.root, name)
        folder = os.path.dirname(path)
        if folder not in self.made:
            os.makedirs(folder, exist_ok=True)
            self.made.add(folder)
        temporary = f"{path}.{uuid.uuid4().hex}.tmp"
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)  # atomic: a reader sees the whole file or none


class FsspecFiles:
    """Files behind an fsspec URI; an object store writes each object whole, so no rename is needed."""

    def __init__(self, root: str) -> None:
        import fsspec  # type: ignore[import-untyped,unused-ignore]

        self.root = root.rstrip("/")
        self.fs, _ = fsspec.core.url_to_fs(self.root)

    def read(self, name: str) -> bytes | None:
        try:
            return bytes(self.fs.cat_file(f"{self.root}/{name}"))
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        self.fs.pipe_file(f"{self.root}/{name}", data)


def open_files(directory: str, folder: str = C.CACHE_FORMAT) -> LocalFiles | FsspecFiles:
    """The files under ``directory/folder``: a local (or FUSE) path, or an fsspec URI."""
    root = f"{directory.rstrip('/')}/{folder}"
    if "://" in directory and not directory.startswith("file://"):
        return FsspecFiles(root)
    return LocalFiles(root.removeprefix("file://"))


def check_directory(directory: str, folder: str = C.CACHE_FORMAT, param: str = "cacheDir") -> None:
    """On the driver: refuse a directory (``cacheDir``, ``batchDir``) that cannot be written, naming it."""
    try:
        files = open_files(directory, folder)
        probe = f"probe/{uuid.uuid4().hex}"
        files.write(probe, b"{}")
        if files.read(probe) != b"{}":
            raise OSError("a file written there could not be read back")
    except ImportError as exc:
        raise ConfigurationError(
            f"{param} {directory!r} is a URI: it needs fsspec and the package of its protocol ({exc})"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{param} {directory!r} cannot be written: {exc}") from None


def entry_name(key: str) -> str:
    return f"{key[:2]}/{key[2:4]}/{key}.json"


class CacheHooks(NoHooks):
    """One task's cache: stored answers looked up before sending, new ones written in increments.

    ``hits`` / ``misses`` / ``stored`` count this task's units (what a statistics hook reads).
    """

    def __init__(
        self,
        files: LocalFiles | FsspecFiles,
        route: Route,
        deployment: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.files, self.route, self.deployment, self.clock = files, route, deployment, clock
        self.pending: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.last_flush = clock()
        self.hits = self.misses = self.stored = 0

    def key(self, unit: Unit) -> str:
        return cache_key(self.route, self.deployment, unit.payload)

    def lookup(self, unit: Unit) -> Any | None:
        data = self.files.read(entry_name(self.key(unit)))
        if data is None:
            self.misses += 1
            return None
        try:
            body = json.loads(data)
        except ValueError:  # a damaged entry is a miss; the new answer replaces it
            self.misses += 1
            return None
        self.hits += 1
        return body

    def store(self, unit: Unit, body: Any) -> None:
        if unit.results.unresolved(unit.rows) or any(unit.results.errors[row] for row in unit.rows):
            return  # an answer that is an error on its rows (a refusal, a cut-short answer) is not kept
        entry = (entry_name(self.key(unit)), json.dumps(body, separators=(",", ":")).encode("utf-8"))
        with self.lock:
            self.pending.append(entry)
            due = len(self.pending) >= C.CACHE_FLUSH_ANSWERS or self.clock() - self.last_flush >= C.CACHE_FLUSH_SECONDS
        if due:
            self.flush()

    def flush(self) -> None:
        with self.write_lock:
            with self.lock:
                batch, self.pending = self.pending, []
                self.last_flush = self.clock()
            for name, data in batch:
                self.files.write(name, data)
            self.stored += len(batch)

    def close(self) -> None:
        self.flush()


@dataclass(frozen=True)
class CacheFactory:
    """Shipped with the plan: where the cache lives and what keys its answers; ``open`` runs on the executor."""

    directory: str
    route: Route
    deployment: str

    def open(self) -> CacheHooks:
        return CacheHooks(open_files(self.directory), self.route, self.deployment)
