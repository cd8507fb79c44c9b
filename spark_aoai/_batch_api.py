"""Azure's Files and Batch APIs: upload a JSONL file, create, poll and cancel a batch, download its results.

Used on the executors (upload, download) and on the driver (create, poll, cancel); free of pyspark. Routes go
through ``Endpoint.url`` like every other API: ``{base}/openai/files?api-version=...`` on Azure,
``{base}/openai/v1/files`` on ``/openai/v1`` and ``{base}/files`` on OpenAI-compatible servers.

Throttling (429), server errors (5xx) and network failures are retried with backoff (``Retry-After`` when
given); anything else raises :class:`BatchApiError` carrying the service's error as a ``RowError``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import requests

from spark_aoai._auth import redact
from spark_aoai._config import ClientConfig
from spark_aoai._constants import MAX_MESSAGE_CHARS
from spark_aoai._contract import ErrorCode, Route, RowError
from spark_aoai._http import error_from_response

FILES = Route("files", deployment_scoped=False)
BATCHES = Route("batches", deployment_scoped=False)
TERMINAL = ("completed", "failed", "expired", "cancelled")
COMPLETION_WINDOW = "24h"
MAX_BACKOFF_SECONDS = 30.0
TIMEOUT_SECONDS = (10.0, 600.0)  # connect, read: an output file of 200 MB takes a while


class BatchApiError(Exception):
    """A Files/Batch API call failed for good; ``error`` is what the service (or the network) said."""

    def __init__(self, what: str, error: RowError) -> None:
        super().__init__(f"{what}: {error.code}: {error.message}")
        self.error = error


def line_url(config: ClientConfig, route: Route) -> str:
    """The ``url`` of a JSONL line (and the batch's ``endpoint``): ``/chat/completions``, ``/embeddings``."""
    return f"/v1/{route.path}" if config.endpoint.style == "openai" else f"/{route.path}"


class BatchApi:
    """One connection pool to the Files and Batch APIs of ``config``'s endpoint."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.session = requests.Session()
        self.session.verify = config.verify
        self.headers = {"User-Agent": "spark-aoai"}
        self.headers.update({name: value.reveal() for name, value in config.headers})

    def _url(self, route: Route, suffix: str = "") -> str:
        url = self.config.endpoint.url(route, self.config.deployment)
        path, _, query = url.partition("?")
        return f"{path}{suffix}" + (f"?{query}" if query else "")

    def _call(self, what: str, method: str, url: str, **kwargs: Any) -> requests.Response:
        attempts = max(1, self.config.retry.max_attempts)
        for attempt in range(1, attempts + 1):
            headers = {**self.headers, **self.config.credential.headers()}
            try:
                response = self.session.request(
                    method, url, headers=headers, timeout=TIMEOUT_SECONDS, verify=self.config.verify, **kwargs
                )
            except requests.RequestException as exc:
                error = RowError(None, ErrorCode.CONNECTION_ERROR, self._clean(f"{type(exc).__name__}: {exc}"))
                wait = min(MAX_BACKOFF_SECONDS, 2.0**attempt)
            else:
                if response.status_code < 300:
                    return response
                found = error_from_response(response.status_code, response.text)
                error = RowError(found.status, found.code, self._clean(found.message), attempt)
                if response.status_code != 429 and response.status_code < 500:
                    raise BatchApiError(what, error)
                wait = _retry_after(response) or min(MAX_BACKOFF_SECONDS, 2.0**attempt)
            if attempt == attempts:
                raise BatchApiError(what, error.with_attempts(attempt))
            time.sleep(wait)
        raise AssertionError("unreachable")

    def _json(self, what: str, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        response = self._call(what, method, url, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            message = f"the service answered {response.status_code} with a body that is not a JSON object"
            raise BatchApiError(what, RowError(response.status_code, ErrorCode.MALFORMED_RESPONSE, message))
        return body

    def upload(self, name: str, path: str) -> dict[str, Any]:
        """Upload the JSONL file at ``path`` with ``purpose=batch``; the file object (``id``, ``bytes``)."""
        with open(path, "rb") as handle:
            files = {"file": (name, handle, "application/jsonl")}
            return self._json(f"uploading {name}", "POST", self._url(FILES), data={"purpose": "batch"}, files=files)

    def create(self, file_id: str, endpoint: str) -> dict[str, Any]:
        """Create the batch of an uploaded file; the batch object."""
        body = {"input_file_id": file_id, "endpoint": endpoint, "completion_window": COMPLETION_WINDOW}
        return self._json(f"creating the batch of {file_id}", "POST", self._url(BATCHES), json=body)

    def get(self, batch_id: str) -> dict[str, Any]:
        return self._json(f"reading batch {batch_id}", "GET", self._url(BATCHES, f"/{batch_id}"))

    def list_batches(self) -> Iterator[dict[str, Any]]:
        """Every batch of the resource, newest first, page by page."""
        after: str | None = None
        while True:
            url = self._url(BATCHES)
            query = "limit=100" + (f"&after={after}" if after else "")
            page = self._json("listing batches", "GET", url + ("&" if "?" in url else "?") + query)
            data = [b for b in page.get("data") or [] if isinstance(b, dict)]
            yield from data
            if not page.get("has_more") or not data:
                return
            after = str(page.get("last_id") or data[-1].get("id"))

    def cancel(self, batch_id: str) -> dict[str, Any]:
        return self._json(f"cancelling batch {batch_id}", "POST", self._url(BATCHES, f"/{batch_id}/cancel"))

    def content(self, file_id: str) -> bytes:
        """The bytes of a file (a batch's output or error file)."""
        return self._call(f"downloading {file_id}", "GET", self._url(FILES, f"/{file_id}/content")).content

    def _clean(self, message: str) -> str:
        return redact(message, self.config.secrets())[:MAX_MESSAGE_CHARS]

    def close(self) -> None:
        self.session.close()


def _retry_after(response: requests.Response) -> float | None:
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = response.headers.get(name)
        try:
            return min(MAX_BACKOFF_SECONDS, float(value) / scale) if value else None
        except ValueError:
            continue
    return None


def parse_lines(data: bytes, wanted: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """The lines of an output or error file by ``custom_id`` (only those in ``wanted``, when given)."""
    lines: dict[str, dict[str, Any]] = {}
    for raw in data.splitlines():
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        custom_id = line.get("custom_id") if isinstance(line, dict) else None
        if isinstance(custom_id, str) and (wanted is None or custom_id in wanted):
            lines[custom_id] = line
    return lines
