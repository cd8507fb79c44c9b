"""Systemic errors name the fix (issue #27 point 6): the first line a user reads says what failed and what to
change, for a refused credential, an unknown deployment, a refused connection, a host that does not resolve
and an untrusted certificate; ``stage.check()`` finds each of them with one request on the driver."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from spark_aoai import ChatCompletion, Embedding
from spark_aoai._core.fixes import headline
from spark_aoai._spark import surface as _surface
from spark_aoai._spark.surface import excepthook, first_line, raised_clean
from spark_aoai.emulator import Emulator, Faults
from spark_aoai.exceptions import RequestFailedError, SystemicError, systemic_of

KEY = "the-right-key"


@pytest.fixture(scope="module")
def emu():
    with Emulator(api_key=KEY) as emulator:
        yield emulator


def chat(endpoint: str, **params: object) -> ChatCompletion:
    settings: dict[str, object] = {"deploymentName": "gpt-4o", "apiKey": KEY, **params}
    return ChatCompletion(promptCol="prompt", endpoint=endpoint, **settings)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_check_passes_and_says_what_it_cost(emu):
    for stage in (
        chat(emu.endpoint),
        chat(emu.endpoint, apiType="responses"),
        chat(emu.endpoint, deploymentName="gpt-5"),  # a reasoning model cut at 16 tokens still answered
        chat(emu.endpoint, rowsPerRequest=4),
        Embedding(deploymentName="text-embedding-3-small", inputCol="text", endpoint=emu.endpoint, apiKey=KEY),
    ):
        result = stage.check()
        assert str(result).startswith("ok: endpoint host 127.0.0.1")
        assert result.total_tokens is not None and 0 < result.total_tokens <= 40  # what the README says it costs


@pytest.mark.parametrize(
    ("params", "starts", "names"),
    [
        ({"apiKey": "wrong"}, "the credential was refused (401)", ["apiKey", "AZURE_OPENAI_API_KEY", "tokenProvider"]),
        ({"deploymentName": "gpt4o"}, "deployment 'gpt4o' was not found (404", ["deploymentName", "'gpt-4o'?"]),
    ],
)
def test_check_raises_the_fix_first_for_service_refusals(emu, params, starts, names):
    with pytest.raises(SystemicError) as raised:
        chat(emu.endpoint, **params).check()
    message = str(raised.value)
    assert message.startswith(starts), message
    assert all(name in message.split(". Service said")[0] for name in names), message
    assert KEY not in message and "wrong" not in message.split("Service said")[0]


def test_check_names_the_fix_for_the_network(tmp_path):
    refused = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(SystemicError, match=r"^the connection was refused .*check endpoint's host and port"):
        chat(refused, apiKey="k").check()
    with pytest.raises(SystemicError, match=r"^the endpoint's host name does not resolve \(DNS\).*check endpoint"):
        chat("https://no-such-host.invalid", apiKey="k").check()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    with Emulator(tls=(str(cert), str(key))) as secure:
        with pytest.raises(SystemicError, match=r"^the TLS handshake failed .*set caBundle"):
            chat(secure.endpoint, apiKey="k").check()
        assert chat(secure.endpoint, apiKey="k", caBundle=str(cert)).check().total_tokens


def test_a_non_systemic_failure_of_the_probe_is_a_request_failed_error():
    with (
        Emulator(faults=Faults(error_500_rate=1.0)) as failing,
        pytest.raises(RequestFailedError, match=r"^InternalServerError \(status 500\)"),
    ):
        chat(failing.endpoint, apiKey="k", maxAttempts=1).check()


def test_headline_for_each_code():
    where = "endpoint host x.openai.azure.com, deployment 'gpt-4o'"
    cases = {
        (403, "AuthenticationTypeDisabled", "Key based authentication is disabled"): "'Cognitive Services OpenAI User'",
        (404, "404", "Resource not found"): "set endpoint to the resource's base URL",
        (None, "credential_error", "tokenProvider could not produce a token"): "check tokenProvider",
        (None, "timeout", "could not connect within the connect timeout"): "connectTimeout",
    }
    for (status, code, message), fix in cases.items():
        line = headline({"status": status, "code": code, "message": message}, where)
        assert fix in line.split(". Service said")[0] and f"at {where}: " in line, line


def test_the_first_line_of_a_failed_action_names_the_fix(spark, emu, capsys):
    df = spark.createDataFrame([(1, "hello"), (2, "there")], "id int, prompt string")
    with pytest.raises(Exception) as raised:  # Spark's own exception, the SystemicError inside it
        chat(emu.endpoint, apiKey="wrong").transform(df).collect()
    assert not isinstance(raised.value, SystemicError)
    assert not str(raised.value).lstrip().startswith("the credential")  # Spark's wrapping comes first ...
    found = systemic_of(raised.value)
    assert found is not None and str(found).startswith("the credential was refused (401) at endpoint host 127.0.0.1")
    assert found.error["status"] == 401
    shown: list[str] = []
    excepthook(lambda *exc: shown.append("traceback"))(type(raised.value), raised.value, None)
    first = capsys.readouterr().err.splitlines()[0]  # ... so the handler writes the fix first, then the traceback
    assert first.startswith("spark_aoai: the credential was refused (401)") and "AZURE_OPENAI_API_KEY" in first
    assert shown == ["traceback"] and first_line(ValueError("x")) is None
    assert _surface._done  # transform installed the handler (IPython's or sys.excepthook's: the shell decides)
    with pytest.raises(SystemicError) as clean, raised_clean():  # what the library's own actions raise
        raise raised.value
    assert str(clean.value).startswith("the credential was refused (401)")
    assert clean.value.__suppress_context__ and clean.value.spark_exception is raised.value  # type: ignore[attr-defined]


def test_readme_documents_check():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "stage.check()" in readme or "chat.check()" in readme


def test_a_notebook_shows_the_fix_above_the_traceback(capsys):
    from IPython.core.interactiveshell import InteractiveShell

    from spark_aoai._spark.surface import ipython_handler

    inner = SystemicError({"status": 401, "code": "401", "message": "Access denied"}, "endpoint host h, deployment 'd'")
    wrapped = f"\n  An exception was thrown from the Python worker.\nspark_aoai.exceptions.SystemicError: {inner}"
    prompts = {name: getattr(sys, name) for name in ("ps1", "ps2", "ps3") if hasattr(sys, name)}
    shell = InteractiveShell.instance()  # it sets sys.ps1: restored after, so later tests see no session
    try:
        shell.set_custom_exc((Exception,), ipython_handler)
        shell.run_cell(f"raise RuntimeError({wrapped!r})")
        shown = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
        assert shown[0].startswith("spark_aoai: the credential was refused (401) at endpoint host h, deployment 'd'")
        assert any("RuntimeError" in line for line in shown[1:])  # then the usual traceback
        shell.run_cell("raise KeyError('other')")
        assert "spark_aoai:" not in capsys.readouterr().out  # any other exception is shown as before
    finally:
        InteractiveShell.clear_instance()
        for name in ("ps1", "ps2", "ps3"):
            if name in prompts:
                setattr(sys, name, prompts[name])
            elif hasattr(sys, name):
                delattr(sys, name)
