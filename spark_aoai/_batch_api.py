"""Azure's Files and Batch APIs: upload a JSONL file, create, poll and cancel a batch, download its results.

Used on the executors (upload, download) and on the driver (create, poll, cancel); free of pyspark. Routes go
through ``Endpoint.url`` like every other API: ``{base}/openai/files?api-version=...`` on Azure,
``{base}/openai/v1/files`` on ``/openai/v1`` and ``{base}/files`` on OpenAI-compatible servers.

Throttling (429), server errors (5xx) and network failures are retried with the stages' retry policy
(``Retry-After`` when given; a 401 once after refreshing the token), except creating a batch, which is not
idempotent; anything else raises :class:`BatchApiError` carrying the service's error as a ``RowError``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests

from spark_aoai import _constants as C
from spark_aoai._config import ClientConfig
from spark_aoai._contract import ErrorCode, Route, RowError
from spark_aoai._http import clean_message, credential_error, error_from_response, request_headers
from spark_aoai._retry import RETRYABLE_STATUS, parse_retry_after, retry_delay

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
    """One connection pool to the Files and Batch APIs of ``config``'s endpoint."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.session = requests.Session()
        self.session.verify = config.verify
        self.headers = request_headers(config)
        self.rng = random.Random()

    def _url(self, route: Route, suffix: str = "") -> str:
        url = self.config.endpoint.url(route, self.config.deployment)
        path, _, query = url.partition("?")
        return f"{path}{suffix}" + (f"?{query}" if query else "")

    def _call(
        self, what: str, method: str, url: str, body: Callable[[], dict[str, Any]] | None = None, attempts: int = 0
    ) -> requests.Response:
        """One call, retried on 429/5xx/network failures (``attempts``, default the policy's); ``body`` makes
        the request's ``json``/``data``/``files`` afresh for each attempt (a file is read again from its start)."""
        policy = self.config.retry
        attempts = attempts or max(1, policy.max_attempts)
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            retry_after = None
            try:
                headers = {**self.headers, **self.config.credential.headers()}
                response = self.session.request(
                    method, url, headers=headers, timeout=C.BATCH_HTTP_TIMEOUT, verify=self.config.verify,
                    **(body() if body is not None else {}),
                )  # fmt: skip
            except requests.RequestException as exc:
                error = RowError(None, ErrorCode.CONNECTION_ERROR, self._clean(f"{type(exc).__name__}: {exc}"))
            except Exception as exc:  # the token provider failed
                error = credential_error(self.config, exc)
            else:
                if response.status_code < 300:
                    return response
                found = error_from_response(response.status_code, response.text)
                error = RowError(found.status, found.code, self._clean(found.message), attempt)
                unauthorized = response.status_code == 401
                if unauthorized and not refreshed and self.config.credential.refresh_after_unauthorized():
                    refreshed = True  # a refused token did nothing: the call again, not counted as an attempt
                    attempt -= 1
                    continue
                if response.status_code not in RETRYABLE_STATUS:
                    raise BatchApiError(what, error)
                retry_after = parse_retry_after(response.headers, time.time())
            if attempt >= attempts:
                raise BatchApiError(what, error.with_attempts(attempt))
            time.sleep(retry_delay(attempt, retry_after, policy, self.rng))

    def _json(self, what: str, method: str, url: str, body: Callable[[], dict[str, Any]] | None = None,
              attempts: int = 0) -> dict[str, Any]:  # fmt: skip
        response = self._call(what, method, url, body, attempts)
        try:
            found = response.json()
        except ValueError:
            found = None
        if not isinstance(found, dict):
            message = f"the service answered {response.status_code} with a body that is not a JSON object"
            raise BatchApiError(what, RowError(response.status_code, ErrorCode.MALFORMED_RESPONSE, message))
        return found

    def upload(self, name: str, path: str) -> dict[str, Any]:
        """Upload the JSONL file at ``path`` with ``purpose=batch``; the file object (``id``, ``status``)."""
        with open(path, "rb") as handle:

            def body() -> dict[str, Any]:
                handle.seek(0)  # each attempt sends the whole file
                return {"data": {"purpose": "batch"}, "files": {"file": (name, handle, "application/jsonl")}}

            uploaded = self._json(f"uploading {name}", "POST", self._url(FILES), body)
        if not isinstance(uploaded.get("id"), str):
            raise BatchApiError(f"uploading {name}", RowError(200, ErrorCode.MALFORMED_RESPONSE, "no file id"))
        return uploaded

    def file(self, file_id: str) -> dict[str, Any]:
        return self._json(f"reading file {file_id}", "GET", self._url(FILES, f"/{file_id}"))

    def create(self, file_id: str, endpoint: str) -> dict[str, Any]:
        """Create the batch of an uploaded file, once: a failure is not retried here, since the batch may have
        been created all the same (the caller looks for it before trying again)."""
        request = {"input_file_id": file_id, "endpoint": endpoint, "completion_window": C.BATCH_COMPLETION_WINDOW}
        return self._json(f"creating the batch of {file_id}", "POST", self._url(BATCHES), lambda: {"json": request}, 1)

    def get(self, batch_id: str) -> dict[str, Any]:
        """The batch object (status, ``request_counts``, output and error file ids)."""
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
        """A JSONL file's non-empty lines, streamed (a result file can be hundreds of MB)."""
        url = self._url(FILES, f"/{file_id}/content")
        response = self._call(f"downloading {file_id}", "GET", url, lambda: {"stream": True})
        try:
            yield from (line for line in response.iter_lines() if line.strip())
        except requests.RequestException as exc:
            error = RowError(None, ErrorCode.CONNECTION_ERROR, self._clean(f"{type(exc).__name__}: {exc}"))
            raise BatchApiError(f"downloading {file_id}", error) from None
        finally:
            response.close()

    def _clean(self, message: str) -> str:
        return clean_message(self.config, message)

    def close(self) -> None:
        self.session.close()
