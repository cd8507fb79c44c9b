"""The persistent response cache (``cacheDir``): the store behind the engine's lookup/store seam.

Layout: ``{cacheDir}/spark_aoai-cache-v1/{k[0:2]}/{k[2:4]}/{k}.json``, one file per answer, content-addressed by
``cache_key`` (sha256 of the route, the deployment and the canonical JSON of the request body; never a
credential or header). Hence:

- a lookup opens at most one small file: its cost does not grow with the cache, and an executor holds nothing
  of the cache in memory (only the answers waiting to be written);
- writers never coordinate: two tasks (a retry, a speculative copy) writing one key write the same bytes, and
  each file appears whole (written to a temporary name, then renamed);
- a task writes its answers in increments (``CACHE_FLUSH_ANSWERS`` answers or ``CACHE_FLUSH_SECONDS``), so a
  killed task loses at most its last increment; ``close`` writes the rest;
- an entry is read as hostile bytes: it holds the key it answers (``{"key": ..., "answer": ...}``) and is used
  only when that key is the one looked up; an entry that cannot be read (any ``OSError``, a directory, garbage,
  over ``CACHE_MAX_ENTRY_BYTES``, another key, the first format's bare answer) is a miss, warned once per task;
- a store that stops accepting writes is given up for the task (warned once): its answers are still returned,
  and ``unstored`` counts those not kept (the statistics show it).

Paths are plain files (a local disk, or a FUSE mount of a lakehouse: ``/lakehouse/default/Files/...`` on
Fabric, ``/dbfs/...`` on Databricks), so executors need no JVM. A URI with a scheme (``abfss://``, ``s3://``)
goes through ``fsspec`` when it and its protocol package are installed. Errors are never stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spark_aoai._core import bounded_json as untrusted_json
from spark_aoai._core import constants as C
from spark_aoai._core.contract import Route, Unit
from spark_aoai._engine.hooks import NoHooks
from spark_aoai.exceptions import ConfigurationError

logger = logging.getLogger("spark_aoai")


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
        """The file's bytes (None when there is none); ``OSError`` when it cannot be read or is too large."""
        limit = C.CACHE_MAX_ENTRY_BYTES
        try:
            with open(os.path.join(self.root, name), "rb") as handle:
                data = handle.read(limit + 1)
        except FileNotFoundError:
            return None
        return _bounded(data, limit)

    def delete(self, name: str) -> None:
        path = os.path.join(self.root, name)
        os.remove(path)
        with contextlib.suppress(OSError):  # the folder of a probe, when nothing else is in it
            os.rmdir(os.path.dirname(path))

    def write(self, name: str, data: bytes) -> None:
        path = os.path.join(self.root, name)
        folder = os.path.dirname(path)
        if folder not in self.made:
            os.makedirs(folder, exist_ok=True)
            self.made.add(folder)
        temporary = f"{path}.{uuid.uuid4().hex}.tmp"
        with open(temporary, "wb") as handle:
            handle.write(data)
        try:
            os.replace(temporary, path)  # atomic: a reader sees the whole file or none
        except IsADirectoryError:  # an empty directory in the entry's place goes (a full one stays: OSError)
            with contextlib.suppress(OSError):
                os.rmdir(path)
            os.replace(temporary, path)
        finally:
            with contextlib.suppress(OSError):
                os.remove(temporary)  # left only when the rename failed


class FsspecFiles:
    """Files behind an fsspec URI; an object store writes each object whole, so no rename is needed."""

    def __init__(self, root: str) -> None:
        import fsspec  # type: ignore[import-untyped,unused-ignore]

        self.root = root.rstrip("/")
        self.fs, _ = fsspec.core.url_to_fs(self.root)

    def read(self, name: str) -> bytes | None:
        limit = C.CACHE_MAX_ENTRY_BYTES
        try:
            return _bounded(bytes(self.fs.cat_file(f"{self.root}/{name}", start=0, end=limit + 1)), limit)
        except FileNotFoundError:
            return None

    def delete(self, name: str) -> None:
        self.fs.rm_file(f"{self.root}/{name}")

    def write(self, name: str, data: bytes) -> None:
        self.fs.pipe_file(f"{self.root}/{name}", data)


def _bounded(data: bytes, limit: int) -> bytes:
    if len(data) > limit:
        raise OSError(f"the file is larger than {limit:,} bytes")
    return data


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
        try:
            if files.read(probe) != b"{}":
                raise OSError("a file written there could not be read back")
        finally:
            files.delete(probe)
    except ImportError as exc:
        raise ConfigurationError(
            f"{param} {directory!r} is a URI: it needs fsspec and the package of its protocol ({exc})"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{param} {directory!r} cannot be written: {exc}") from None


def entry_name(key: str) -> str:
    return f"{key[:2]}/{key[2:4]}/{key}.json"


def entry_bytes(key: str, body: Any) -> bytes:
    """What is stored for an answer: the key it answers with it, so that a misplaced file is not believed."""
    return json.dumps({"key": key, "answer": body}, separators=(",", ":")).encode("utf-8")


def entry_answer(data: bytes, key: str) -> tuple[Any, str | None]:
    """The answer an entry holds for ``key``, or ``(None, why not)``."""
    try:
        entry = untrusted_json.loads(data)
    except ValueError:  # garbage, cut short, non-finite, or nested too deep: a damaged entry
        return None, "damaged"
    if not isinstance(entry, dict) or set(entry) != {"key", "answer"}:
        return None, "of the first format"  # a bare answer: what it answers cannot be checked
    if entry["key"] != key or entry["answer"] is None:
        return None, "of another request"
    return entry["answer"], None


class CacheHooks(NoHooks):
    """One task's cache: stored answers looked up before sending, new ones written in increments.

    ``hits`` / ``misses`` / ``stored`` count this task's units, ``unusable`` the entries found but not used
    (damaged, unreadable, another key's), ``unstored`` the answers that could not be written.
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
        self.hits = self.misses = self.stored = self.unusable = self.unstored = 0
        self.write_failures = 0
        self.warned: set[str] = set()

    def key(self, unit: Unit) -> str:
        """The key of the row's own request (a re-ask's answer is kept for the request a re-run sends)."""
        return cache_key(self.route, self.deployment, unit.stored_as or unit.payload)

    def lookup(self, unit: Unit) -> Any | None:
        key = self.key(unit)
        name = entry_name(key)
        try:
            data = self.files.read(name)
        except Exception as exc:  # any OSError on a mount, a directory in its place, a huge file: a miss
            self._unusable(name, f"unreadable ({type(exc).__name__}: {exc})")
            return None
        if data is None:
            self.misses += 1
            return None
        body, problem = entry_answer(data, key)
        if problem is not None:
            self._unusable(name, problem)
            return None
        self.hits += 1
        return body

    def _unusable(self, name: str, problem: str) -> None:
        """A stored entry this task cannot use: a miss (the new answer replaces it), warned once per task."""
        self.misses += 1
        self.unusable += 1
        self._warn_once(
            "unusable",
            "spark_aoai: a response cache entry (%s) is %s: its request is sent again; further such entries of "
            "this task are not reported one by one",
            name,
            problem,
        )

    def _warn_once(self, kind: str, message: str, *args: Any) -> None:
        with self.lock:
            if kind in self.warned:
                return
            self.warned.add(kind)
        logger.warning(message, *args)

    def store(self, unit: Unit, body: Any) -> None:
        open_rows, errors = unit.results.unresolved(unit.rows), unit.results.errors
        # a pack is kept whatever its items' fate (even none answered): a re-run reads it, takes the same path
        # to the smaller packs and single rows that answered the others, and finds those stored too
        if not unit.store_partial and (open_rows or any(errors[row] for row in unit.rows)):
            return  # an answer that is an error on its rows (a refusal, a cut-short answer) is not kept
        key = self.key(unit)
        entry = (entry_name(key), entry_bytes(key, body))
        with self.lock:
            if self.write_failures >= C.CACHE_WRITE_FAILURES:
                self.unstored += 1  # the store was given up: the answer is still the row's
                return
            self.pending.append(entry)
            due = len(self.pending) >= C.CACHE_FLUSH_ANSWERS or self.clock() - self.last_flush >= C.CACHE_FLUSH_SECONDS
        if due:
            self.flush()

    def flush(self) -> None:
        with self.write_lock:
            with self.lock:
                batch, self.pending = self.pending, []
                self.last_flush = self.clock()
            for index, (name, data) in enumerate(batch):
                if self.write_failures >= C.CACHE_WRITE_FAILURES:
                    with self.lock:
                        self.unstored += len(batch) - index
                    return
                try:
                    self.files.write(name, data)
                except Exception as exc:  # a full disk, a read-only mount, a file where a folder should be
                    with self.lock:
                        self.unstored += 1
                        self.write_failures += 1
                    self._warn_once(
                        "unwritable",
                        "spark_aoai: the response cache cannot store an answer (%s: %s); the answers are still "
                        "returned, those not stored are counted in the statistics (answers_not_stored), and after "
                        "%d such failures this task stops writing to the cache",
                        type(exc).__name__,
                        exc,
                        C.CACHE_WRITE_FAILURES,
                    )
                    continue
                self.stored += 1

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
