"""The Files and Batch API routes, matched by path suffix like the inference routes, so any prefix works.

Azure's form ``{endpoint}/openai/files?api-version=...`` and ``/openai/batches?api-version=...`` (api-version
required; with a deployments registry it must be one Azure published, from 2024-07-01-preview on) and the v1
form ``{endpoint}/openai/v1/files``, ``/openai/v1/batches`` (or ``/v1/...``; no api-version):

===========================  ==============================================================
``POST files``               upload (multipart ``purpose=batch`` and ``file``): the file object
``GET files``                list (``purpose``, ``order``, ``limit``, ``after``): a page
``GET files/{id}``           the file object
``GET files/{id}/content``   the file's bytes
``DELETE files/{id}``        ``{"id", "object": "file", "deleted": true}``
``POST batches``             create (``input_file_id``, ``endpoint``, ``completion_window``, ``metadata``)
``GET batches``              list (``limit``, ``after``): a page, newest first
``GET batches/{id}``         the batch object
``POST batches/{id}/cancel`` the batch object, ``cancelling``
===========================  ==============================================================

A page is the SDK's cursor page: ``{"object": "list", "data", "first_id", "last_id", "has_more"}``.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from spark_aoai.emulator._batches import Batches
from spark_aoai.emulator._catalog import API_VERSIONS, BATCH_MIN_API_VERSION
from spark_aoai.emulator._dispatch import api_version_of
from spark_aoai.emulator._errors import bad_request, invalid, not_found, server_error
from spark_aoai.emulator._files import upload

_ROUTE = re.compile(
    r"(?:(?P<azure>/openai)|/v1)/(?P<kind>files|batches)(?:/(?P<id>[^/]+)(?:/(?P<action>content|cancel))?)?$"
)
DEFAULT_PAGE, MAX_PAGE = 20, 100


@dataclass(frozen=True)
class Reply:
    status: int
    payload: bytes
    content_type: str = "application/json"


def match(path: str) -> re.Match[str] | None:
    """The Files or Batch API route ``path`` names, if any."""
    return _ROUTE.search(path)


def serve(
    batches: Batches, method: str, route: re.Match[str], query: dict[str, list[str]], content_type: str, raw: bytes
) -> Reply:
    """Answer one Files or Batch API call (refusals are raised as :class:`ApiError`)."""
    state, files = batches.state, batches.files
    object_id, action = route["id"], route["action"]
    call = f"{method} {route['kind']}" + ("/{id}" if object_id else "") + (f"/{action}" if action else "")
    state.count_batch_api(call)
    api_version = _api_version(route, query, state.settings.deployments is not None)
    faults = state.settings.batch
    if call in [name.strip() for name in (faults.hold_calls or "").split(",")]:
        time.sleep(faults.hold_seconds)  # accepted, never answered in time
    body: Any
    if call == "POST files":
        body = upload(files, state.settings.batch, content_type, raw).object()
        state.count_upload()
    elif call == "GET files":
        listed = files.newest_first(_one(query, "purpose"))
        body = _page([f.object() for f in (listed[::-1] if _one(query, "order") == "asc" else listed)], query)
    elif call == "GET files/{id}":
        body = files.get(object_id).object()
    elif call == "GET files/{id}/content":
        return Reply(200, files.get(object_id).data, "application/octet-stream")
    elif call == "DELETE files/{id}":
        body = files.delete(object_id)
    elif call == "POST batches":
        body = batches.create(_json(raw), api_version)
        if state.roll(faults.lost_create_rate):
            raise server_error(500)  # made, and the answer lost
    elif call == "GET batches":
        if state.roll(faults.list_error_rate):
            raise server_error(500)
        ignored = state.roll(faults.list_ignores_after_rate)
        body = _page(batches.newest_first(), {k: v for k, v in query.items() if not (ignored and k == "after")})
        body["has_more"] = body["has_more"] or ignored  # and says there is more, for ever
    elif call == "GET batches/{id}":
        body = batches.get(object_id)
    elif call == "POST batches/{id}/cancel":
        if state.roll(faults.cancel_error_rate):
            raise server_error(500)
        body = batches.cancel(object_id, stuck=state.roll(faults.cancel_stuck_rate))
    else:
        raise not_found()
    return Reply(200, json.dumps(body).encode("utf-8"))


def _api_version(route: re.Match[str], query: dict[str, list[str]], strict: bool) -> str | None:
    """The api-version of an Azure-form call (required; checked by a strict emulator), None on the v1 form."""
    if not route["azure"]:
        return None
    version = api_version_of(query, required=True)
    if strict and (version not in API_VERSIONS or str(version) < BATCH_MIN_API_VERSION):
        raise bad_request("API version not supported")
    return version


def _one(query: dict[str, list[str]], name: str) -> str | None:
    return next(iter(query.get(name, [])), None)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        return None


def _page(items: list[dict[str, Any]], query: dict[str, list[str]]) -> dict[str, Any]:
    """The cursor page of ``items`` after the ``after`` id, ``limit`` long."""
    text = _one(query, "limit") or str(DEFAULT_PAGE)
    limit = int(text) if text.isdigit() else 0
    if not 1 <= limit <= MAX_PAGE:
        raise invalid("limit", f"Invalid 'limit': {text!r}. Expected an integer from 1 to {MAX_PAGE}.")
    after = _one(query, "after")
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }
