"""The Files/Batch API client over real HTTP, with a proxy in front of the emulator that fails on purpose:
an upload retried after a 503 sends the whole file again; a batch whose creation answer is lost is adopted,
never created twice; a restarted creator finds the batches an earlier one made."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from spark_aoai._batch.api import BatchApi, BatchApiError
from spark_aoai._batch.results import Answers, BatchOutcome, FileLimits, JobFiles
from spark_aoai._batch.service import Creator, batch_fields
from spark_aoai._client.config import Limits, resolve_client_config
from spark_aoai._client.retry import RetryPolicy
from spark_aoai._spark.batch_job import _outcome as outcome_of
from spark_aoai.emulator import BatchSettings, Emulator

KEY = "sk-batch-secret-0123456789"


class FlakyProxy:
    """Forwards to ``upstream``; ``fail[(method, suffix)] = (when, times)`` fails matching calls: ``before``
    forwarding (a 503, nothing reached the service), ``unauthorized`` (a 401, nothing reached it), or ``after``
    (the service acted, the answer is lost)."""

    def __init__(self, upstream: str) -> None:
        self.upstream, self.fail, self.seen = upstream.rstrip("/"), {}, []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _relay(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?")[0]
                proxy.seen.append((self.command, path, len(raw)))
                rule = next((k for k in proxy.fail if k[0] == self.command and path.endswith(k[1])), None)
                when = None
                if rule is not None and proxy.fail[rule][1] > 0:
                    when, times = proxy.fail[rule]
                    proxy.fail[rule] = (when, times - 1)
                if when == "before":
                    return self._answer(503, b'{"error": {"code": "ServiceUnavailable", "message": "try again"}}')
                if when == "unauthorized":
                    return self._answer(401, b'{"error": {"code": "401", "message": "token expired"}}')
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = requests.request(self.command, proxy.upstream + self.path, data=raw, headers=headers)
                if when == "after":
                    return self._answer(500, b'{"error": {"code": "InternalServerError", "message": "lost"}}')
                self._answer(answer.status_code, answer.content)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def setup(tmp_path):
    with Emulator(api_key=KEY, batch=BatchSettings(seconds=0.2)) as emu:
        proxy = FlakyProxy(emu.endpoint)
        config = resolve_client_config(
            deployment="gpt-4o", endpoint=proxy.endpoint, api_version=None, api_style="auto", api_key=KEY,
            aad_token=None, token_provider=None, headers=None, retry=RetryPolicy(max_attempts=3, base_delay=0.01),
            limits=Limits(), verify=True, fail_on_error=False,
        )  # fmt: skip
        path = tmp_path / "in.jsonl"
        line = '{"custom_id": "r-%d", "method": "POST", "url": "/chat/completions", "body": {"model": "gpt-4o", ' \
               '"messages": [{"role": "user", "content": "q %d"}]}}\n'  # fmt: skip
        path.write_text("".join(line % (i, i) for i in range(50)))
        yield emu, proxy, config, path
        proxy.close()


def test_an_upload_retried_after_a_503_sends_the_whole_file(setup):
    emu, proxy, config, path = setup
    proxy.fail[("POST", "/files")] = ("before", 1)
    api = BatchApi(config)
    uploaded = api.upload("in.jsonl", str(path))
    sizes = [size for method, p, size in proxy.seen if method == "POST" and p.endswith("/files")]
    assert len(sizes) == 2 and sizes[0] == sizes[1] > path.stat().st_size  # the retry carried the file again
    assert b"\n".join(api.lines(uploaded["id"])) + b"\n" == path.read_bytes() and emu.stats()["files"] == 1


def test_a_lost_creation_answer_adopts_the_batch_instead_of_creating_another(setup):
    emu, proxy, config, path = setup
    file_id = BatchApi(config).upload("in.jsonl", str(path))["id"]
    proxy.fail[("POST", "/batches")] = ("after", 1)
    manifest: dict[str, Any] = {"files": {file_id: {"lines": 50, "bytes": path.stat().st_size}}}
    saves: list[int] = []
    Creator(BatchApi(config), manifest, lambda: saves.append(1), "/chat/completions").create_missing()
    assert emu.stats()["batches"] == {"created": 1}
    assert manifest["files"][file_id]["batch"]["input_file_id"] == file_id and saves
    # a restarted driver that had begun creating looks before creating: still one batch
    manifest["files"][file_id].pop("batch")
    Creator(BatchApi(config), manifest, lambda: None, "/chat/completions").create_missing()
    assert emu.stats()["batches"] == {"created": 1} and manifest["files"][file_id]["batch"]


def test_a_refused_creation_is_recorded_and_tried_again_by_a_later_run(setup):
    emu, proxy, config, path = setup
    file_id = BatchApi(config).upload("in.jsonl", str(path))["id"]
    proxy.fail[("POST", "/batches")] = ("before", 3)  # every attempt of this run
    manifest: dict[str, Any] = {"files": {file_id: {"lines": 50, "bytes": 1}}}
    Creator(BatchApi(config), manifest, lambda: None, "/chat/completions").create_missing()
    assert "ServiceUnavailable" in manifest["files"][file_id]["error"] and "batch" not in manifest["files"][file_id]
    Creator(BatchApi(config), manifest, lambda: None, "/chat/completions").create_missing()
    assert manifest["files"][file_id]["batch"]["status"] == "validating" and "error" not in manifest["files"][file_id]
    assert emu.stats()["batches"] == {"created": 1}


def test_errors_carry_the_services_code_and_no_secret(setup):
    _, _, config, _ = setup
    with pytest.raises(BatchApiError, match="NotFound") as raised:
        BatchApi(config).get("batch_nope")
    assert raised.value.error.status == 404 and KEY not in str(raised.value) and KEY not in repr(config)


def _config(endpoint: str, attempts: int = 3, **credential: Any):
    given = {"api_key": KEY, "aad_token": None, "token_provider": None, **credential}
    return resolve_client_config(
        deployment="gpt-4o", endpoint=endpoint, api_version=None, api_style="auto", headers=None,
        retry=RetryPolicy(max_attempts=attempts, base_delay=0.01), limits=Limits(), verify=True, fail_on_error=False,
        **given,
    )  # fmt: skip


def test_a_401_refreshes_the_token_once_and_the_call_goes_on(setup):
    emu, proxy, _, path = setup
    calls = []
    config = _config(proxy.endpoint, attempts=1, api_key=None, token_provider=lambda: calls.append(1) or KEY)
    file_id = BatchApi(config).upload("in.jsonl", str(path))["id"]
    proxy.fail[("POST", "/batches")] = ("unauthorized", 1)
    manifest: dict[str, Any] = {"files": {file_id: {"lines": 50, "bytes": 1}}}
    Creator(BatchApi(config), manifest, lambda: None, "/chat/completions").create_missing()
    assert manifest["files"][file_id]["batch"]["status"] == "validating" and emu.stats()["batches"] == {"created": 1}
    assert len(calls) >= 2  # the token was asked for again after the 401


def test_a_lost_answer_on_the_only_attempt_still_adopts(setup):
    emu, proxy, _, path = setup
    config = _config(proxy.endpoint, attempts=1)
    file_id = BatchApi(config).upload("in.jsonl", str(path))["id"]
    proxy.fail[("POST", "/batches")] = ("after", 1)
    manifest: dict[str, Any] = {"files": {file_id: {"lines": 50, "bytes": 1}}}
    Creator(BatchApi(config), manifest, lambda: None, "/chat/completions").create_missing()
    assert "error" not in manifest["files"][file_id] and emu.stats()["batches"] == {"created": 1}


def refused_for_quota(emu: Emulator, api: BatchApi, path: Any) -> tuple[str, dict[str, Any]]:
    """An uploaded file and its batch, failed for the enqueued-token quota (``token_limit_exceeded``)."""
    file_id = api.upload("in.jsonl", str(path))["id"]
    emu.configure(batch=BatchSettings(seconds=0.1, fail_rate=1.0))  # the enqueued-token quota is full
    refused = api.create(file_id, "/chat/completions")
    deadline = time.monotonic() + 20
    while api.get(refused["id"])["status"] != "failed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return file_id, refused


def test_a_resubmission_cut_short_by_a_crash_adopts_the_batch_it_made(setup):
    emu, _, config, path = setup
    api = BatchApi(config)
    file_id, failed = refused_for_quota(emu, api, path)
    emu.configure(batch=BatchSettings(seconds=0.1))
    made = api.create(file_id, "/chat/completions")  # the dead driver's resubmission, never saved
    info = {"lines": 50, "bytes": 1, "batch": batch_fields(api.get(failed["id"])), "resubmitting": True}
    manifest: dict[str, Any] = {"files": {file_id: info}, "creating": True}
    creator = Creator(BatchApi(config), manifest, lambda: None, "/chat/completions", backoff=0.0)
    creator.retry_due(file_id, deadline=time.time() + 60)
    creator.retry_due(file_id, deadline=time.time() + 60)
    assert info["batch"]["id"] == made["id"] and emu.stats()["batches"]["created"] == 2  # no third batch


def test_a_row_that_expires_after_its_batch_was_refused_for_quota_says_why(setup):
    emu, _, config, path = setup
    api = BatchApi(config)
    file_id, refused = refused_for_quota(emu, api, path)
    emu.configure(batch=BatchSettings(seconds=60.0))  # the resubmission runs past the job's timeout
    info = {"lines": 50, "bytes": 1, "batch": batch_fields(api.get(refused["id"])), "asked": True}
    manifest: dict[str, Any] = {"files": {file_id: info}, "creating": True}
    Creator(BatchApi(config), manifest, lambda: None, "/chat/completions", backoff=0.0).retry_due(
        file_id, deadline=time.time() + 60
    )
    assert info["batch"]["id"] != refused["id"] and info["refusals"] == 1
    info["batch"] = batch_fields(api.cancel(info["batch"]["id"]))  # what the timeout does
    info["timed_out"] = True
    error = outcome_of(info).missing_error()
    assert error.code == "batch_expired"
    assert "submitted again after 1 refusal(s), the last: token_limit_exceeded" in error.message, error.message


def test_result_files_that_are_gone_mark_rows_and_an_outage_fails_the_task(setup):
    _, proxy, config, path = setup
    api = BatchApi(config)
    file_id = api.upload("in.jsonl", str(path))["id"]
    plan = SimpleNamespace(config=config)
    limits = FileLimits(100, 10**6)
    gone = JobFiles({}, (BatchOutcome("batch_1", "completed", "file-gone", None),), limits)
    answers = Answers(plan, gone, "r-0")  # type: ignore[arg-type]
    assert answers.get("r-0") is None and "gone" in answers.missing.message
    answers.close()
    proxy.fail[("GET", "/content")] = ("before", 3)  # every attempt: an outage
    there = JobFiles({}, (BatchOutcome("batch_1", "completed", file_id, None),), limits)
    with pytest.raises(BatchApiError, match="ServiceUnavailable"):
        Answers(plan, there, "r-0")  # type: ignore[arg-type]
    # once the outage is over the file is read (any JSONL with custom_ids; here the uploaded one)
    assert Answers(plan, there, "r-0").get("r-3")["custom_id"] == "r-3"  # type: ignore[arg-type,index]
