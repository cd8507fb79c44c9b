"""The emulator's Files and Batch APIs over real HTTP, driven by the openai SDK (the contract's validator).

Each batch line must get the body the online route gives for the same deployment and body (ids and timestamps
aside); the lifecycle, the output and error files, the faults and the stats are checked as a client sees them.
"""

from __future__ import annotations

import json
import time
from typing import Any

import openai
import pytest
import requests
from openai.types import Batch, CreateEmbeddingResponse, FileObject
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from spark_aoai.emulator import BatchSettings, Emulator, Faults, RateLimit, batch_line_fails

API_VERSION = "2024-10-21"
TERMINAL = {"completed", "failed", "expired", "cancelled"}
ORDER = ["validating", "in_progress", "finalizing", "completed"]


def chat_line(custom_id: str, text: str, model: str = "gpt-4o", url: str = "/chat/completions") -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def azure(emu: Emulator, api_key: str = "k", api_version: str = API_VERSION) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(azure_endpoint=emu.endpoint, api_key=api_key, api_version=api_version, max_retries=0)


def v1(emu: Emulator, api_key: str = "k") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{emu.endpoint}/openai/v1", api_key=api_key, max_retries=0)


def submit(client: openai.OpenAI, lines: list[dict[str, Any]], endpoint: str = "/chat/completions") -> Batch:
    uploaded = client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    assert isinstance(uploaded, FileObject) and uploaded.purpose == "batch" and uploaded.status == "processed"
    assert uploaded.id.startswith("file-") and uploaded.filename == "in.jsonl" and uploaded.bytes == len(jsonl(lines))
    batch = client.batches.create(input_file_id=uploaded.id, endpoint=endpoint, completion_window="24h")
    assert batch.status == "validating" and batch.input_file_id == uploaded.id and batch.endpoint == endpoint
    return batch


def wait(client: openai.OpenAI, batch: Batch, timeout: float = 30) -> tuple[Batch, list[Batch]]:
    """Poll until the batch ends: (the last object, every object seen)."""
    seen, deadline = [batch], time.monotonic() + timeout
    while batch.status not in TERMINAL:
        assert time.monotonic() < deadline, batch
        time.sleep(0.02)
        batch = client.batches.retrieve(batch.id)
        seen.append(batch)
    return batch, seen


def run(client: openai.OpenAI, lines: list[dict[str, Any]], endpoint: str = "/chat/completions") -> Batch:
    return wait(client, submit(client, lines, endpoint))[0]


def records(client: openai.OpenAI, file_id: str | None) -> dict[str, dict[str, Any]]:
    """An output or error file's lines by custom_id, each checked for the Batch API's line shape."""
    assert file_id is not None
    out = {}
    for text in client.files.content(file_id).text.splitlines():
        record = json.loads(text)
        assert set(record) == {"id", "custom_id", "response", "error"}
        assert record["id"].startswith("batch_req_")
        assert (record["response"] is None) != (record["error"] is None), record
        if record["response"] is not None:
            assert set(record["response"]) == {"status_code", "request_id", "body"}
        else:
            assert set(record["error"]) == {"code", "message"}
        assert record["custom_id"] not in out
        out[record["custom_id"]] = record
    return out


def online(emu: Emulator, op: str, body: dict[str, Any]) -> requests.Response:
    url = f"{emu.endpoint}/openai/deployments/{body['model']}/{op}?api-version={API_VERSION}"
    return requests.post(url, json=body, timeout=30)


def without_ids(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in ("id", "created", "created_at")}


# -- the round trip -----------------------------------------------------------------------------------------


def test_chat_batch_answers_as_the_online_route_does(emulator):
    client = azure(emulator)
    lines = [chat_line(f"row-{i}", f"Is parcel {i} late?") for i in range(6)]
    lines[2]["body"]["response_format"] = {
        "type": "json_schema",
        "json_schema": {"name": "r", "schema": {"type": "object", "properties": {"late": {"type": "boolean"}}}},
    }
    lines[3]["body"]["max_tokens"] = 3
    batch, seen = wait(client, submit(client, lines))
    assert batch.status == "completed", batch
    statuses = [b.status for b in seen]
    assert statuses == sorted(statuses, key=ORDER.index)  # never backwards
    assert batch.request_counts is not None and batch.request_counts.model_dump() == {
        "total": 6,
        "completed": 6,
        "failed": 0,
    }
    assert batch.created_at <= batch.in_progress_at <= batch.finalizing_at <= batch.completed_at
    assert batch.expires_at == batch.created_at + 24 * 3600 and batch.errors is None
    answered = records(client, batch.output_file_id)
    assert set(answered) == {line["custom_id"] for line in lines}
    for line in lines:
        response = answered[line["custom_id"]]["response"]
        assert response["status_code"] == 200
        ChatCompletion.model_validate(response["body"])
        expected = online(emulator, "chat/completions", line["body"]).json()
        assert without_ids(response["body"]) == without_ids(expected)
    assert answered["row-3"]["response"]["body"]["choices"][0]["finish_reason"] == "length"
    assert records(client, batch.error_file_id) == {}  # Azure writes an empty error file
    error_file = client.files.retrieve(batch.error_file_id)
    assert error_file.bytes == 0 and error_file.purpose == "batch_output"


def test_embeddings_batch_gives_the_online_vectors(emulator):
    client = azure(emulator)
    bodies = [
        {"model": "text-embedding-3-small", "input": ["red apples", "green pears"]},
        {"model": "text-embedding-3-small", "input": "a single text", "dimensions": 256},
        {"model": "text-embedding-3-small", "input": ["base64 too"], "encoding_format": "base64"},
    ]
    lines = [{"custom_id": f"e{i}", "method": "POST", "url": "/embeddings", "body": b} for i, b in enumerate(bodies)]
    batch = run(client, lines, "/embeddings")
    assert batch.status == "completed"
    answered = records(client, batch.output_file_id)
    for line in lines:
        body = answered[line["custom_id"]]["response"]["body"]
        if "encoding_format" not in line["body"]:  # the SDK decodes base64 itself, before its model
            CreateEmbeddingResponse.model_validate(body)
        assert body == online(emulator, "embeddings", line["body"]).json()


def test_the_v1_form_and_the_responses_endpoint(emulator):
    client = v1(emulator)
    lines = [chat_line(f"v{i}", f"question {i}", url="/v1/chat/completions") for i in range(3)]
    batch = run(client, lines, "/v1/chat/completions")
    assert batch.status == "completed" and batch.endpoint == "/v1/chat/completions"
    for line in lines:
        body = records(client, batch.output_file_id)[line["custom_id"]]["response"]["body"]
        assert without_ids(body) == without_ids(online(emulator, "chat/completions", line["body"]).json())
    asks = [{"model": "gpt-4o", "input": f"Summarize item {i}", "instructions": "Be brief."} for i in range(2)]
    lines = [{"custom_id": f"r{i}", "method": "POST", "url": "/responses", "body": b} for i, b in enumerate(asks)]
    batch = run(client, lines, "/v1/responses")
    assert batch.status == "completed", batch
    for line in lines:
        body = records(client, batch.output_file_id)[line["custom_id"]]["response"]["body"]
        parsed = Response.model_validate(body)
        expected = client.responses.create(**line["body"])
        assert parsed.output_text == expected.output_text and parsed.usage == expected.usage


def test_request_counts_grow_while_the_batch_runs(emulator):
    emulator.configure(batch=BatchSettings(seconds=1.5))
    client = azure(emulator)
    batch, seen = wait(client, submit(client, [chat_line(f"p{i}", f"text {i}") for i in range(10)]))
    assert batch.status == "completed"
    running = [b.request_counts.completed for b in seen if b.status == "in_progress" and b.request_counts]
    assert any(0 < done < 10 for done in running), running
    assert running == sorted(running)
    assert seen[0].status == "validating" and "finalizing" in {b.status for b in seen}
    assert all(b.request_counts and b.request_counts.total == 10 for b in seen if b.status != "validating")


# -- what goes to which file --------------------------------------------------------------------------------


def test_a_content_filtered_line_is_a_400_in_the_error_file(emulator):
    faults = Faults(content_filter_marker="<<bad>>", finish_content_filter_marker="<<cut>>", tool_calls_marker="<<t>>")
    emulator.configure(faults=faults)
    client = azure(emulator)
    lines = [chat_line("fine", "hello <<t>>"), chat_line("bad", "hello <<bad>>"), chat_line("cut", "hello <<cut>>")]
    batch = run(client, lines)
    assert batch.status == "completed"
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (2, 1)
    failed = records(client, batch.error_file_id)
    assert set(failed) == {"bad"}
    assert failed["bad"]["error"] is None and failed["bad"]["response"]["status_code"] == 400
    refusal = online(emulator, "chat/completions", lines[1]["body"])
    assert refusal.status_code == 400 and failed["bad"]["response"]["body"] == refusal.json()
    assert failed["bad"]["response"]["body"]["error"]["code"] == "content_filter"
    answered = records(client, batch.output_file_id)
    assert set(answered) == {"fine", "cut"}
    assert answered["cut"]["response"]["body"]["choices"][0]["finish_reason"] == "content_filter"
    assert answered["fine"]["response"]["body"]["choices"][0]["finish_reason"] == "tool_calls"
    assert emulator.stats()["batch_lines"] == {"chat 200": 2, "chat 400": 1}


def test_online_faults_and_limits_never_touch_batch_lines_and_stats_stay_apart(emulator):
    client = azure(emulator)
    emulator.configure(
        faults=Faults(error_500_rate=1.0, drop_rate=1.0, quota_429_rate=1.0, latency_ms=2000),
        rate_limit=RateLimit(requests_per_minute=1),
    )
    lines = [chat_line(f"q{i}", f"question {i}") for i in range(5)]
    started = time.monotonic()
    batch = run(client, lines)
    assert batch.status == "completed" and time.monotonic() - started < 10
    answered = records(client, batch.output_file_id)
    assert all(r["response"]["status_code"] == 200 for r in answered.values())
    stats = emulator.stats()
    assert stats["requests"] == {} and stats["billed_tokens"] == 0 and stats["admitted_tokens"] == 0
    assert stats["paths"] == {} and stats["inputs"] == {} and stats["first_request_at"] is None
    assert stats["batch_lines"] == {"chat 200": 5}
    billed = sum(r["response"]["body"]["usage"]["total_tokens"] for r in answered.values())
    assert stats["batch_billed_tokens"] == billed > 0
    assert stats["batch_answered_inputs"] == {f"question {i}": 1 for i in range(5)}
    assert stats["files"] == 1 and stats["batches"] == {"created": 1, "completed": 1}
    assert stats["batch_api"]["POST files"] == 1 and stats["batch_api"]["POST batches"] == 1
    assert stats["batch_api"]["GET batches/{id}"] >= 1 and stats["batch_api"]["GET files/{id}/content"] == 1


def test_line_error_rate_picks_lines_by_custom_id(emulator):
    emulator.configure(batch=BatchSettings(line_error_rate=0.4))
    client = azure(emulator)
    lines = [chat_line(f"id-{i}", f"text {i}") for i in range(30)]
    chosen = {line["custom_id"] for line in lines if batch_line_fails(line["custom_id"], 0.4)}
    assert 0 < len(chosen) < 30
    batch = run(client, lines)
    assert batch.status == "completed"
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (30 - len(chosen), len(chosen))
    failed = records(client, batch.error_file_id)
    assert set(failed) == chosen
    assert all(r["response"] is None and r["error"]["code"] == "request_timeout" for r in failed.values())
    assert set(records(client, batch.output_file_id)) == {line["custom_id"] for line in lines} - chosen
    assert emulator.stats()["batch_lines"] == {"chat 200": 30 - len(chosen), "chat request_timeout": len(chosen)}


# -- failing, expiring, cancelling --------------------------------------------------------------------------


def test_invalid_lines_fail_the_batch_with_their_line_numbers(emulator):
    client = azure(emulator)
    good = chat_line("a", "fine")
    lines = [
        jsonl([good]).strip(),
        b"{not json",
        jsonl([chat_line("a", "same id again")]).strip(),
        jsonl([{**chat_line("b", "x"), "method": "GET"}]).strip(),
        jsonl([chat_line("c", "x", url="/embeddings")]).strip(),
        jsonl([chat_line("d", "x", model="gpt-4.1")]).strip(),
        jsonl([{"custom_id": "e", "method": "POST", "url": "/chat/completions", "body": {"messages": []}}]).strip(),
    ]
    uploaded = client.files.create(file=("bad.jsonl", b"\n".join(lines)), purpose="batch")
    batch = wait(
        client, client.batches.create(input_file_id=uploaded.id, endpoint="/chat/completions", completion_window="24h")
    )[0]
    assert batch.status == "failed" and batch.failed_at is not None and batch.in_progress_at is None
    assert batch.output_file_id is None and batch.error_file_id is None
    assert batch.errors is not None and batch.errors.object == "list"
    found = [(e.code, e.line, e.param) for e in batch.errors.data or []]
    assert found == [
        ("invalid_json_line", 2, None),
        ("duplicate_custom_id", 3, "custom_id"),
        ("invalid_request", 4, "method"),
        ("url_mismatch", 5, "url"),
        ("model_mismatch", 6, "body.model"),
        ("invalid_request", 7, "body.model"),
    ]
    assert all(e.message for e in batch.errors.data or [])
    assert emulator.stats()["batch_lines"] == {} and emulator.stats()["batches"] == {"created": 1, "failed": 1}


def test_an_empty_file_or_one_with_a_byte_order_mark_fails_its_batch(emulator):
    client = azure(emulator)
    batch = run(client, [])
    assert batch.status == "failed" and batch.errors and batch.errors.data
    assert batch.errors.data[0].code == "empty_file"
    uploaded = client.files.create(file=("bom.jsonl", b"\xef\xbb\xbf" + jsonl([chat_line("a", "x")])), purpose="batch")
    create = client.batches.create(input_file_id=uploaded.id, endpoint="/chat/completions", completion_window="24h")
    batch = wait(client, create)[0]
    assert batch.status == "failed" and batch.errors and batch.errors.data
    assert batch.errors.data[0].code == "invalid_json_line" and "byte-order mark" in str(batch.errors.data[0].message)


def test_limits_a_large_file_is_refused_at_upload_a_long_one_fails_validation(emulator):
    client = azure(emulator)
    data = jsonl([chat_line(f"l{i}", "x") for i in range(3)])
    emulator.configure(batch=BatchSettings(max_bytes=len(data) - 1))
    with pytest.raises(openai.BadRequestError) as refused:
        client.files.create(file=("in.jsonl", data), purpose="batch")
    error = refused.value.body
    assert isinstance(error, dict) and error["code"] == "invalid_request_error" and error["param"] == "file"
    assert error["message"].startswith("File is too large.") and f"{len(data) - 1:,} bytes" in error["message"]
    emulator.configure(batch=BatchSettings(max_lines=2))
    batch = run(client, [chat_line(f"l{i}", "x") for i in range(3)])
    assert batch.status == "failed" and batch.errors and batch.errors.data
    assert batch.errors.data[0].code == "too_many_tasks" and "maximum allowed value of 2" in str(
        batch.errors.data[0].message
    )
    assert emulator.stats()["files"] == 1  # the refused upload is not a file


def test_expiry_after_n_lines(emulator):
    emulator.configure(batch=BatchSettings(expire_after_lines=2))
    client = azure(emulator)
    lines = [chat_line(f"x{i}", f"text {i}") for i in range(5)]
    batch = run(client, lines)
    assert batch.status == "expired" and batch.expired_at is not None and batch.completed_at is None
    assert batch.request_counts is not None
    assert batch.request_counts.model_dump() == {"total": 5, "completed": 2, "failed": 0}
    answered, failed = records(client, batch.output_file_id), records(client, batch.error_file_id)
    assert set(answered) == {"x0", "x1"} and set(failed) == {"x2", "x3", "x4"}
    assert all(r["error"]["code"] == "batch_expired" and r["response"] is None for r in failed.values())
    assert emulator.stats()["batches"] == {"created": 1, "expired": 1}


def test_failure_faults_every_batch_or_the_marked_one(emulator):
    emulator.configure(batch=BatchSettings(fail_rate=1.0))
    client = azure(emulator)
    batch = run(client, [chat_line("f", "x")])
    assert batch.status == "failed" and batch.output_file_id is None and batch.errors and batch.errors.data
    assert batch.errors.data[0].code == "token_limit_exceeded" and batch.errors.data[0].line is None
    emulator.configure(batch=BatchSettings(fail_marker="<<fail>>"))
    plain = submit(client, [chat_line("a", "fine")])
    marked = submit(client, [chat_line("b", "also fine"), chat_line("c", "not <<fail>>")])
    assert wait(client, plain)[0].status == "completed"
    assert wait(client, marked)[0].status == "failed"


def test_cancel_keeps_the_lines_done(emulator):
    emulator.configure(batch=BatchSettings(seconds=4))
    client = azure(emulator)
    lines = [chat_line(f"c{i}", f"text {i}") for i in range(20)]
    batch = submit(client, lines)
    while not (batch.request_counts and batch.request_counts.completed >= 2):
        time.sleep(0.05)
        batch = client.batches.retrieve(batch.id)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    assert client.batches.cancel(batch.id).status == "cancelling"  # again: no change
    batch = wait(client, cancelling)[0]
    assert batch.status == "cancelled" and batch.cancelled_at is not None and batch.completed_at is None
    assert batch.request_counts is not None and batch.request_counts.total == 20
    answered, failed = records(client, batch.output_file_id), records(client, batch.error_file_id)
    assert len(answered) == batch.request_counts.completed < 20
    assert set(answered) | set(failed) == {line["custom_id"] for line in lines}
    assert all(r["error"]["code"] == "batch_cancelled" for r in failed.values())
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)


# -- ids, routes, auth, the registry ------------------------------------------------------------------------


def test_unknown_ids_are_404(emulator):
    client = azure(emulator)
    for call in (
        lambda: client.files.retrieve("file-nope"),
        lambda: client.files.content("file-nope"),
        lambda: client.files.delete("file-nope"),
        lambda: client.batches.retrieve("batch_nope"),
        lambda: client.batches.cancel("batch_nope"),
        lambda: client.batches.create(input_file_id="file-nope", endpoint="/chat/completions", completion_window="24h"),
    ):
        with pytest.raises(openai.NotFoundError) as missing:
            call()
        assert isinstance(missing.value.body, dict) and "nope" in missing.value.body["message"]
    uploaded = client.files.create(file=("in.jsonl", jsonl([chat_line("a", "x")])), purpose="batch")
    assert client.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)


def test_create_refusals(emulator):
    client = azure(emulator)
    uploaded = client.files.create(file=("in.jsonl", jsonl([chat_line("a", "x")])), purpose="batch")
    create = client.batches.create
    for kwargs, param in (
        ({"endpoint": "/completions"}, "endpoint"),
        ({"completion_window": "48h"}, "completion_window"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ):
        arguments = {"input_file_id": uploaded.id, "endpoint": "/chat/completions", "completion_window": "24h"}
        with pytest.raises(openai.BadRequestError) as refused:
            create(**{**arguments, **kwargs})
        assert isinstance(refused.value.body, dict) and refused.value.body["param"] == param
    batch = run(client, [chat_line("a", "x")])
    with pytest.raises(openai.BadRequestError):  # an output file is no batch input
        create(input_file_id=batch.output_file_id or "", endpoint="/chat/completions", completion_window="24h")
    with pytest.raises(openai.BadRequestError):
        client.files.create(file=("in.jsonl", b"{}"), purpose="fine-tune")
    tagged = create(
        input_file_id=uploaded.id, endpoint="/chat/completions", completion_window="24h", metadata={"job": "nightly"}
    )
    assert tagged.metadata == {"job": "nightly"}


def test_routes_api_version_prefixes_and_listing(emulator):
    base = f"{emulator.endpoint}/some/gateway/openai"
    assert requests.get(f"{base}/batches", timeout=10).status_code == 400  # the Azure form needs an api-version
    assert "api-version" in requests.get(f"{base}/files", timeout=10).json()["error"]["message"]
    assert requests.get(f"{base}/batches?api-version={API_VERSION}", timeout=10).json()["data"] == []
    assert requests.get(f"{base}/v1/batches", timeout=10).json()["object"] == "list"
    client = azure(emulator)
    ids = [submit(client, [chat_line("a", f"x{i}")]).id for i in range(3)]
    first = client.batches.list(limit=2)
    assert [b.id for b in first.data] == ids[::-1][:2] and first.has_more
    assert [b.id for b in client.batches.list(limit=2)] == ids[::-1]  # the SDK follows the cursor
    assert [b.id for b in v1(emulator).batches.list(after=ids[2])] == ids[1::-1]
    assert [f.purpose for f in client.files.list(purpose="batch")] == ["batch"] * 3


def test_auth_when_the_emulator_has_a_key():
    with Emulator(api_key="secret") as emu:
        with pytest.raises(openai.AuthenticationError):
            azure(emu, api_key="wrong").files.create(file=("in.jsonl", b"{}"), purpose="batch")
        assert requests.get(f"{emu.endpoint}/openai/v1/batches", timeout=10).status_code == 401
        assert run(azure(emu, api_key="secret"), [chat_line("a", "x")]).status == "completed"  # api-key header
        assert run(v1(emu, api_key="secret"), [chat_line("a", "x")], "/v1/chat/completions").status == "completed"
        fabric = {"Authorization": "MwcToken secret"}
        assert requests.get(f"{emu.endpoint}/openai/v1/files", headers=fabric, timeout=10).status_code == 200


def test_a_strict_registry():
    with Emulator(deployments={"chat": "gpt-4o", "emb": "text-embedding-3-small"}) as emu:
        client = azure(emu)
        batch = run(client, [chat_line("a", "hello", model="chat")])
        body = records(client, batch.output_file_id)["a"]["response"]["body"]
        assert batch.status == "completed" and body["model"] == "gpt-4o"
        batch = run(client, [chat_line("a", "hello", model="gpt-4o")])
        assert batch.status == "failed" and batch.errors and batch.errors.data
        assert batch.errors.data[0].code == "model_not_found" and batch.errors.data[0].line == 1
        with pytest.raises(openai.BadRequestError, match="API version not supported"):
            azure(emu, api_version="2024-06-01").batches.list()  # before the Batch API
        mismatch = run(client, [chat_line("a", "hello", model="emb")])  # a chat request to an embeddings model
        failed = records(client, mismatch.error_file_id)["a"]["response"]
        assert failed["status_code"] == 400 and failed["body"]["error"]["code"] == "OperationNotSupported"


def test_settings_are_checked():
    with pytest.raises(ValueError, match="line_error_rate"):
        BatchSettings(line_error_rate=1.5)
    with pytest.raises(ValueError, match="max_lines"):
        BatchSettings(max_lines=0)
    with Emulator() as emu:
        response = requests.post(f"{emu.endpoint}/_emulator/config", json={"batch": {"seconds": -1}}, timeout=10)
        assert response.status_code == 400 and "seconds" in response.json()["error"]["message"]
