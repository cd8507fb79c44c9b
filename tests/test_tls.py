"""TLS: certificates are verified by default; caBundle trusts a private CA. Emulator served over HTTPS."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from spark_aoai import ChatCompletion
from spark_aoai.emulator import Emulator, chat_reply


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[str, str]:
    folder = Path(tmp_path_factory.mktemp("tls"))
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


def test_untrusted_certificate_is_an_error_and_ca_bundle_trusts_it(spark, certificate):
    df = spark.createDataFrame([(1, "secure?")], "id int, prompt string")
    with Emulator(tls=certificate) as emu:
        assert emu.endpoint.startswith("https://")
        stage = ChatCompletion(
            deploymentName="gpt-4o", promptCol="prompt", endpoint=emu.endpoint, apiKey="k", onSystemicError="mark"
        )
        row = stage.transform(df).first()
        assert (row.error.code, row.error.attempts) == ("tls_error", 1)  # not retried: it will not heal
        assert "CERTIFICATE_VERIFY_FAILED" in row.error.message
        with pytest.raises(Exception, match="tls_error"):  # by default an untrusted endpoint fails the job
            ChatCompletion(deploymentName="gpt-4o", promptCol="prompt", endpoint=emu.endpoint, apiKey="k").transform(
                df
            ).collect()
        trusted = ChatCompletion(
            deploymentName="gpt-4o", promptCol="prompt", endpoint=emu.endpoint, apiKey="k", caBundle=certificate[0]
        )
        row = trusted.transform(df).first()
        assert row.error is None and row.response == chat_reply([{"role": "user", "content": "secure?"}])
