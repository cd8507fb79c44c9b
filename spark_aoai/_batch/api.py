"""Azure's Files and Batch APIs: upload a JSONL file, create, poll and cancel a batch, download its results.

Used on the executors (upload, download) and on the driver (create, poll, cancel); free of pyspark. Routes go
through ``Endpoint.url`` like every other API: ``{base}/openai/files?api-version=...`` on Azure,
``{base}/openai/v1/files`` on ``/openai/v1`` and ``{base}/files`` on OpenAI-compatible servers.

Calls go through the engine's transport (``_http.Transport``) and are retried by its policy (``_retry``):
throttling (429), server errors (5xx), timeouts and network failures, ``Retry-After`` when given, a 401 once
after refreshing the token; creating a batch is not retried here (not idempotent: ``_batch_service`` looks
first). Anything else raises :class:`BatchApiError` carrying the service's error as a ``RowError``.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests
import urllib3

from spark_aoai._client.config import ClientConfig
from spark_aoai._client.http import JSON_CONTENT, Outcome, Transport, clean_message
from spark_aoai._client.retry import parse_retry_after, quota_error, quota_exhausted, retry_delay, should_retry
from spark_aoai._core import constants as C
from spark_aoai._core.contract import ErrorCode, Route, RowError

FILES = Route("files", deployment_scoped=False)
BATCHES = Route("batches", deployment_scoped=False)
TERMINAL = ("completed", "failed", "expired", "cancelled")


class BatchApiError(Exception):
    """A Files/Batch API call failed for good; ``error`` is what the service (or the network) said."""

    def __init__(self, what: str, error: RowError) -> None:
        super().__init__(f"{what}: {error.code}: {error.message}")
        self.error = error


def line_url(config: ClientConfig, route: Route) -> str:
    """The ``url`` of a JSONL line (and the batch's ``endpoint``): ``/chat/completions``, ``/embeddings``."""
    return f"/v1/{route.path}" if config.endpoint.style == "openai" else f"/{route.path}"


class BatchApi:
    """One connection pool to the Files and Batch APIs of ``config``'s endpoint, through the engine's transport
    and retry policy (``_http.Transport``, ``_retry``): an attempt waits at most ``limits.read_timeout``
    (``requestTimeout``) for its answer."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.transport = Transport(config, pool_size=4)
        self.rng = random.Random()
        self.limit = config.limits.read_timeout

    def _url(self, route: Route, suffix: str = "") -> str:
        url = self.config.endpoint.url(route, self.config.deployment)
        path, _, query = url.partition("?")
        return f"{path}{suffix}" + (f"?{query}" if query else "")

    def _call(
        self, what: str, method: str, url: str, body: Callable[[], dict[str, Any]] | None = None, attempts: int = 0,
        stream: bool = False, limit: float = 0.0,
    ) -> Outcome:  # fmt: skip
        """One call, retried as the engine retries a request (``_retry.should_retry``, ``Retry-After``, one
        credential refresh after a 401) up to ``attempts`` (default the policy's ``maxAttempts``); ``body`` makes
        the request's ``data``/``files`` afresh for each attempt (a file is read again from its start)."""
        policy = self.config.retry
        attempts = attempts or max(1, policy.max_attempts)
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            outcome = self.transport.request(
                method, url, limit or self.limit, stream=stream, **(body() if body is not None else {})
            )
            error = outcome.error
            if error is None:
                return outcome
            if error.status == 401 and not refreshed and self.config.credential.refresh_after_unauthorized():
                refreshed = True  # a refused token did nothing: the call again, not counted as an attempt
                attempt -= 1
                continue
            retry_after = parse_retry_after(outcome.headers, time.time())
            if quota_exhausted(error, retry_after, policy):
                raise BatchApiError(what, quota_error(error.with_attempts(attempt), retry_after, policy))
            if not should_retry(error.status, error.code) or attempt >= attempts:
                raise BatchApiError(what, error.with_attempts(attempt, outcome.request_id))
            time.sleep(retry_delay(attempt, retry_after, policy, self.rng))

    def _json(self, what: str, method: str, url: str, body: Callable[[], dict[str, Any]] | None = None,
              attempts: int = 0, limit: float = 0.0) -> dict[str, Any]:  # fmt: skip
        outcome = self._call(what, method, url, body, attempts, limit=limit)
        if not isinstance(outcome.body, dict):
            message = f"the service answered {outcome.status} with a body that is not a JSON object"
            raise BatchApiError(what, RowError(outcome.status, ErrorCode.MALFORMED_RESPONSE, message))
        return outcome.body

    def upload(self, name: str, path: str) -> dict[str, Any]:
        """Upload the JSONL file at ``path`` with ``purpose=batch``; the file object (``id``, ``status``)."""
        with open(path, "rb") as handle:

            def body() -> dict[str, Any]:
                handle.seek(0)  # each attempt sends the whole file
                return {"data": {"purpose": "batch"}, "files": {"file": (name, handle, "application/jsonl")}}

            # the attempt's bound grows with the file: sending it takes its time before any answer can come
            limit = self.limit + os.path.getsize(path) / C.BATCH_UPLOAD_BYTES_PER_SECOND
            uploaded = self._json(f"uploading {name}", "POST", self._url(FILES), body, limit=limit)
        if not isinstance(uploaded.get("id"), str):
            raise BatchApiError(f"uploading {name}", RowError(200, ErrorCode.MALFORMED_RESPONSE, "no file id"))
        return uploaded

    def file(self, file_id: str) -> dict[str, Any]:
        return self._json(f"reading file {file_id}", "GET", self._url(FILES, f"/{file_id}"))

    def create(self, file_id: str, endpoint: str) -> dict[str, Any]:
        """Create the batch of an uploaded file, once: a failure is not retried here, since the batch may have
        been created all the same (the caller looks for it before trying again)."""
        request = {"input_file_id": file_id, "endpoint": endpoint, "completion_window": C.BATCH_COMPLETION_WINDOW}
        send = {"data": json.dumps(request), "headers": JSON_CONTENT}
        return self._json(f"creating the batch of {file_id}", "POST", self._url(BATCHES), lambda: dict(send), 1)

    def get(self, batch_id: str) -> dict[str, Any]:
        """The batch object (status, ``request_counts``, output and error file ids)."""
        return self._json(f"reading batch {batch_id}", "GET", self._url(BATCHES, f"/{batch_id}"))

    def list_batches(self) -> Iterator[dict[str, Any]]:
        """Every batch of the resource, newest first, page by page (see ``_pages`` for the bounds)."""
        yield from self._pages("listing batches", self._url(BATCHES), "")

    def list_files(self, purpose: str = "batch") -> Iterator[dict[str, Any]]:
        """The resource's files of ``purpose``, newest first, page by page."""
        yield from self._pages("listing files", self._url(FILES), f"&purpose={purpose}")

    def _pages(self, what: str, url: str, query: str) -> Iterator[dict[str, Any]]:
        """A list's items, at most ``BATCH_MAX_LIST_PAGES`` pages; a page that brings no item not seen before
        (a service that ignores ``after``) ends it, as the last page would."""
        after: str | None = None
        seen: set[str] = set()
        for _ in range(C.BATCH_MAX_LIST_PAGES):
            asked = "limit=100" + query + (f"&after={after}" if after else "")
            page = self._json(what, "GET", url + ("&" if "?" in url else "?") + asked)
            data = [item for item in page.get("data") or [] if isinstance(item, dict)]
            new = [item for item in data if str(item.get("id")) not in seen]
            seen.update(str(item.get("id")) for item in new)
            yield from new
            if not page.get("has_more") or not new:
                return
            after = str(new[-1].get("id"))

    def cancel(self, batch_id: str) -> dict[str, Any]:
        """Ask the service to cancel a batch (it ends ``cancelled``; the requests done are kept)."""
        return self._json(f"cancelling batch {batch_id}", "POST", self._url(BATCHES, f"/{batch_id}/cancel"))

    def delete(self, file_id: str) -> bool:
        """Delete a file from the service; False when it was gone already."""
        try:
            self._call(f"deleting {file_id}", "DELETE", self._url(FILES, f"/{file_id}"))
        except BatchApiError as exc:
            if exc.error.status == 404:
                return False
            raise
        return True

    def lines(self, file_id: str) -> Iterator[bytes]:
        """A JSONL file's non-empty lines, streamed (a result file can be hundreds of MB): each read of it waits
        at most ``limits.read_timeout``."""
        url = self._url(FILES, f"/{file_id}/content")
        response = self._call(f"downloading {file_id}", "GET", url, stream=True).body
        try:
            yield from (line for line in response.iter_lines() if line.strip())
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            error = RowError(None, ErrorCode.CONNECTION_ERROR, self._clean(f"{type(exc).__name__}: {exc}"))
            raise BatchApiError(f"downloading {file_id}", error) from None
        finally:
            response.close()

    def _clean(self, message: str) -> str:
        return clean_message(self.config, message)

    def close(self) -> None:
        self.transport.close()
