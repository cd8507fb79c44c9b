"""The emulator's command line as a CI tool, run as a child process: flags, errors, logging, control, SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

import spark_aoai
from spark_aoai.emulator.__main__ import _BATCH_FLAGS, _FAULT_FLAGS, build_parser

CLI = [sys.executable, "-m", "spark_aoai.emulator"]
CHAT_PATH = "/openai/deployments/gpt-4o/chat/completions"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)


@contextmanager
def serving(*args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    child = subprocess.Popen(
        [*CLI, "--port", str(port), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{endpoint}/_emulator/health", timeout=5)
                break
            except requests.ConnectionError:
                assert child.poll() is None and time.monotonic() < deadline, child.stderr and child.stderr.read()
                time.sleep(0.05)
        yield endpoint, child
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(10)


def test_every_flag_has_help_and_every_number_its_unit():
    actions = [a for a in build_parser()._actions if a.option_strings and a.dest != "help"]
    assert all(a.help for a in actions), [a.dest for a in actions if not a.help]
    units = ("second", "millisecond", "0..1", "per minute", "tokens", "fraction", "port", "seed", "lines", "bytes")
    for action in actions:
        if action.type not in (None, str) and action.dest != "bad_structured_kind":
            assert any(unit in str(action.help) for unit in units), (action.dest, action.help)
    assert run("--help").returncode == 0


def test_version():
    done = run("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"spark_aoai {spark_aoai.__version__}"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--drop-rate", "1.5"], "--drop-rate"),
        (["--error-500-rate", "-0.1"], "between 0 and 1"),
        (["--latency-ms", "-5"], "--latency-ms"),
        (["--slow-seconds", "-1"], "cannot be negative"),
        (["--trickle-seconds", "x"], "--trickle-seconds"),
        (["--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"], "TLS file not found"),
        (["--tls-cert", "cert.pem"], "go together"),
        (["--deployment", "no-model"], "NAME=MODEL"),
        (["--batch-line-error-rate", "2"], "between 0 and 1"),
        (["--batch-max-lines", "0"], "--batch-max-lines"),
    ],
)
def test_bad_values_are_one_line_and_exit_2(args, needle):
    done = run("--port", str(free_port()), *args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in done.stderr, done.stderr


def test_a_port_in_use_is_one_line_and_exit_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run("--port", str(port))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"python -m spark_aoai.emulator: error: port {port} on 127.0.0.1 is already in use"
    ]


def test_sigterm_exits_0():
    with serving("--quiet") as (_, child):
        child.send_signal(signal.SIGTERM)
        assert child.wait(10) == 0


def test_log_requests_prints_a_line_per_request_and_no_secret():
    with serving("--quiet", "--log-requests", "--api-key", "s3cret-key") as (endpoint, child):
        ok = requests.post(
            f"{endpoint}{CHAT_PATH}?api-version=2024-10-21&sig=top-secret",
            json={"messages": [{"role": "user", "content": "hi"}]},
            headers={"api-key": "s3cret-key"},
            timeout=10,
        )
        bad = requests.post(f"{endpoint}/openai/v1/embeddings", json={"model": "e", "input": "x"}, timeout=10)
        assert (ok.status_code, bad.status_code) == (200, 401)
        child.send_signal(signal.SIGTERM)
        out, _ = child.communicate(timeout=10)
    lines = out.strip().splitlines()
    assert len(lines) == 3, lines  # the health probe, the chat, the embeddings
    method, path, status, elapsed = lines[1].split()
    assert (method, path, status) == ("POST", f"{CHAT_PATH}?api-version=2024-10-21", "200")
    assert elapsed.endswith("ms") and float(elapsed[:-2]) >= 0
    assert lines[2].split()[:3] == ["POST", "/openai/v1/embeddings", "401"]
    assert "s3cret-key" not in out and "top-secret" not in out


def test_control_paths_need_the_key_when_one_is_set():
    with serving("--quiet", "--api-key", "k1") as (endpoint, _):
        settings = json.dumps({"api_key": None})
        for path, data in (("/_emulator/config", settings), ("/_emulator/reset", None)):
            assert requests.post(f"{endpoint}{path}", data=data, timeout=10).status_code == 401
            wrong = requests.post(f"{endpoint}{path}", data=data, headers={"api-key": "nope"}, timeout=10)
            assert wrong.status_code == 401
        chat = {"messages": [{"role": "user", "content": "hi"}]}
        url = f"{endpoint}{CHAT_PATH}?api-version=2024-10-21"
        assert requests.post(url, json=chat, timeout=10).status_code == 401  # the key still holds
        right = requests.post(f"{endpoint}/_emulator/config", data=settings, headers={"api-key": "k1"}, timeout=10)
        assert right.status_code == 200
        assert requests.post(url, json=chat, timeout=10).status_code == 200  # reconfigured: no key now


def test_fault_flags_cover_every_fault_setting():
    from dataclasses import fields

    from spark_aoai.emulator import Faults

    flagged = set(_FAULT_FLAGS) | {"bad_structured_kind", "shuffle_embeddings"}  # shuffling: Python only
    flagged |= {"cheap_logprobs"}  # --no-cheap-logprobs
    assert {f.name for f in fields(Faults)} == flagged


def test_batch_flags_cover_every_batch_setting_and_apply():
    from dataclasses import fields

    from spark_aoai.emulator import BatchSettings

    assert {f.name for f in fields(BatchSettings)} == set(_BATCH_FLAGS)
    with serving("--quiet", "--batch-max-bytes", "10") as (endpoint, _):
        files = {"file": ("in.jsonl", b'{"custom_id": "a"}'), "purpose": (None, "batch")}
        refused = requests.post(f"{endpoint}/openai/v1/files", files=files, timeout=10)
        assert refused.status_code == 400 and "File is too large" in refused.json()["error"]["message"]


def test_deployment_flag_makes_it_strict():
    with serving("--quiet", "--deployment", "only=gpt-4o-mini") as (endpoint, _):
        chat = {"messages": [{"role": "user", "content": "hi"}]}
        body = requests.post(
            f"{endpoint}/openai/deployments/only/chat/completions?api-version=2024-10-21", json=chat, timeout=10
        ).json()
        assert body["model"] == "gpt-4o-mini"
        missing = requests.post(f"{endpoint}{CHAT_PATH}?api-version=2024-10-21", json=chat, timeout=10)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "DeploymentNotFound"


def test_the_python_wrapper_keeps_control_with_a_key():
    from spark_aoai.emulator import Emulator, Faults

    for process in (False, True):
        with Emulator(api_key="k", process=process) as emu:
            emu.configure(faults=Faults(error_500_rate=1.0))
            assert (
                requests.post(
                    f"{emu.endpoint}{CHAT_PATH}?api-version=2024-10-21",
                    json={"messages": [{"role": "user", "content": "x"}]},
                    headers={"api-key": "k"},
                    timeout=10,
                ).status_code
                == 500
            )
            emu.configure(api_key="k2")
            emu.reset_stats()
            assert emu.stats()["requests"] == {}


def test_extra_deployment_flag_adds_a_name():
    with serving("--quiet", "--extra-deployment", "my-chat=gpt-4o-mini") as (endpoint, _):
        chat = {"messages": [{"role": "user", "content": "hi"}]}
        url = f"{endpoint}/openai/deployments/{{}}/chat/completions?api-version=2024-10-21"
        body = requests.post(url.format("my-chat"), json=chat, timeout=10).json()
        assert body["model"] == "gpt-4o-mini"
        assert requests.post(url.format("gpt-4o"), json=chat, timeout=10).status_code == 200
        typo = requests.post(url.format("gpt4o"), json=chat, timeout=10)
        assert typo.status_code == 404 and typo.json()["error"]["code"] == "DeploymentNotFound"
