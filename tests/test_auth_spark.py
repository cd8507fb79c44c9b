"""Credentials, endpoint forms and persistence without secrets, against the emulator on local Spark."""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from pathlib import Path

import pytest
from pyspark.ml import Pipeline, PipelineModel

from spark_aoai import ChatCompletion, ConfigurationError, Embedding
from spark_aoai._client.auth import ApiKey, Secret, StaticToken, TokenProvider, token_expiry
from spark_aoai._client.config import resolve_endpoint
from spark_aoai._core.contract import Route
from spark_aoai.emulator import Emulator, chat_reply
from spark_aoai.exceptions import failure_of

KEY = "azure-key-0123456789abcdef"


def prompts(spark, n=4):
    return spark.createDataFrame([(i, f"p{i}") for i in range(n)], "id int, prompt string")


def chat(url, **kwargs):
    return ChatCompletion(**{"deploymentName": "gpt-4o", "promptCol": "prompt", "endpoint": url, **kwargs})


def all_ok(df) -> bool:
    rows = df.collect()
    return all(r.error is None and r.response == chat_reply([{"role": "user", "content": r.prompt}]) for r in rows)


def jwt(exp: float, name: str) -> str:
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part({'exp': exp, 'name': name})}.sig"


def test_api_key_argument_and_environment(spark, monkeypatch):
    with Emulator(api_key=KEY) as emu:
        assert all_ok(chat(emu.endpoint, apiKey=KEY).transform(prompts(spark)))
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", emu.endpoint)
        assert all_ok(ChatCompletion(deploymentName="gpt-4o", promptCol="prompt").transform(prompts(spark)))
        assert emu.stats()["auth"] == {"api-key": 8}


def test_static_entra_token(spark):
    with Emulator(api_key="static-token") as emu:
        assert all_ok(chat(emu.endpoint, aadToken="static-token").transform(prompts(spark)))
        assert emu.stats()["auth"] == {"bearer": 4}


def test_token_provider_is_called_again_before_expiry(spark, tmp_path):
    calls = tmp_path / "calls.txt"
    path = str(calls)

    def provider():
        with open(path, "a") as f:
            f.write("x")
        return jwt(time.time() + 300.4, "user")  # refresh margin is 300 s: due again after ~0.4 s

    with Emulator() as emu:
        from spark_aoai.emulator import Faults

        emu.configure(faults=Faults(latency_ms=150))
        df = prompts(spark, 12).coalesce(1)
        assert all_ok(chat(emu.endpoint, tokenProvider=provider, concurrency=1).transform(df))
        assert emu.stats()["auth"] == {"bearer": 12}
    assert len(calls.read_text()) >= 3  # 12 requests x 150 ms: several refreshes in one partition


def test_token_provider_refreshes_after_a_401(spark, tmp_path):
    calls = tmp_path / "calls.txt"
    path = str(calls)

    def provider():  # first call: a token the service has revoked; later calls: a valid one
        with open(path, "a") as f:
            f.write("x")
        with open(path) as f:
            return "revoked-token" if len(f.read()) == 1 else "new-token"

    with Emulator(api_key="new-token") as emu:
        df = prompts(spark, 3).coalesce(1)
        assert all_ok(chat(emu.endpoint, tokenProvider=provider, concurrency=1).transform(df))
        assert emu.stats()["requests"] == {"chat 401": 1, "chat 200": 3}
    assert len(calls.read_text()) == 2


def test_extra_headers_are_sent_and_secret(spark, capsys):
    with Emulator() as emu:
        stage = chat(emu.endpoint, headers={"Ocp-Apim-Subscription-Key": "apim-secret-value"})
        out = stage.transform(prompts(spark))
        assert all_ok(out)
        assert emu.stats()["headers"]["ocp-apim-subscription-key"] == 4
        out.explain(True)
        assert "apim-secret-value" not in capsys.readouterr().out + repr(stage) + stage.explainParams()


@pytest.mark.parametrize(
    ("suffix", "style", "expected_path"),
    [
        ("", "auto", "/openai/deployments/gpt-4o/chat/completions"),
        ("/", "auto", "/openai/deployments/gpt-4o/chat/completions"),
        ("/openai/v1", "auto", "/openai/v1/chat/completions"),
        ("", "azure_v1", "/openai/v1/chat/completions"),
        ("/gateway/aoai", "auto", "/gateway/aoai/openai/deployments/gpt-4o/chat/completions"),
        ("/v1", "auto", "/v1/chat/completions"),
    ],
)
def test_endpoint_forms(spark, suffix, style, expected_path):
    with Emulator(api_key=KEY) as emu:
        out = chat(emu.endpoint + suffix, apiKey=KEY, apiStyle=style).transform(prompts(spark, 2))
        assert all_ok(out)
        assert emu.stats()["paths"] == {expected_path: 2}
        assert emu.stats()["auth"] == ({"bearer": 2} if suffix == "/v1" else {"api-key": 2})


def test_api_version_is_sent(spark):
    with Emulator() as emu:
        url = resolve_endpoint(emu.endpoint, "auto", "2024-10-21").url(Route("chat/completions"), "gpt-4o")
        assert url.endswith("?api-version=2024-10-21")
        assert all_ok(chat(emu.endpoint, apiVersion="2024-10-21").transform(prompts(spark, 1)))


def write_fabric_standins(root: Path, endpoint: str) -> None:
    (root / "synapse" / "ml").mkdir(parents=True)
    (root / "synapse" / "__init__.py").write_text("")
    (root / "synapse" / "ml" / "__init__.py").write_text("")
    (root / "synapse" / "ml" / "mlflow.py").write_text(
        "from types import SimpleNamespace\n"
        "def get_mlflow_env_config():\n"
        f"    return SimpleNamespace(workload_endpoint={endpoint + '/webapi/capacities/c1/workloads/ML/'!r},\n"
        "                           workspace_id='ws-1', artifact_id='nb-1')\n"
    )
    (root / "trident_token_library_wrapper.py").write_text(
        "class PyTridentTokenLibrary:\n"
        "    @staticmethod\n"
        "    def get_mwc_token(workspace_id, artifact_id, version):\n"
        "        assert (workspace_id, artifact_id, version) == ('ws-1', 'nb-1', 2)\n"
        "        return 'fabric-mwc-token'\n"
    )


def test_fabric_built_in_endpoint_and_token_with_no_configuration(spark, tmp_path, monkeypatch):
    with Emulator(api_key="fabric-mwc-token") as emu:
        write_fabric_standins(tmp_path, emu.endpoint)
        monkeypatch.syspath_prepend(str(tmp_path))
        stage = ChatCompletion(deploymentName="gpt-4.1", promptCol="prompt")
        assert all_ok(stage.transform(prompts(spark, 3)))
        stats = emu.stats()
        assert stats["auth"] == {"mwctoken": 3}
        assert list(stats["paths"]) == [
            "/webapi/capacities/c1/workloads/ML/cognitive/openai/openai/deployments/gpt-4.1/chat/completions"
        ]
    for name in [m for m in sys.modules if m.startswith(("synapse", "trident_token"))]:
        del sys.modules[name]


def test_two_credentials_is_a_driver_error(spark):
    with pytest.raises(ConfigurationError, match="exactly one credential, not apiKey and tokenProvider"):
        chat("http://127.0.0.1:9", apiKey="a", tokenProvider=lambda: "t").transform(prompts(spark))
    with pytest.raises(ConfigurationError, match="caBundle"):
        chat("http://127.0.0.1:9", caBundle="/no/such/bundle.pem").transform(prompts(spark))


def test_save_and_load_never_write_secrets(spark, tmp_path, monkeypatch):
    with Emulator(api_key=KEY) as emu:
        chat_stage = chat(
            emu.endpoint,
            apiKey=KEY,
            headers={"x-secret": "header-secret-value"},
            temperature=0.3,
            responseFormat={"type": "json_object"},
        )
        emb_stage = Embedding(
            deploymentName="text-embedding-3-small",
            inputCol="prompt",
            endpoint=emu.endpoint,
            apiKey=KEY,
            dimensions=32,
            errorCol="emb_error",
        )
        chat_stage.save(str(tmp_path / "chat"))
        model = Pipeline(stages=[chat_stage, emb_stage]).fit(prompts(spark))
        model.save(str(tmp_path / "pipeline"))
        for file in tmp_path.rglob("*"):
            if file.is_file():
                text = file.read_bytes()
                assert KEY.encode() not in text and b"header-secret-value" not in text, file

        loaded = ChatCompletion.load(str(tmp_path / "chat"))
        assert loaded.getOrDefault(loaded.temperature) == 0.3
        assert loaded.getOrDefault(loaded.endpoint) == emu.endpoint
        with pytest.raises(Exception) as raised:  # no key came back from disk: a 401 for every row fails the job
            loaded.transform(prompts(spark, 2)).collect()
        assert failure_of(raised.value)["status"] == 401
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
        assert all(r.error is None for r in loaded.transform(prompts(spark, 2)).collect())
        out = PipelineModel.load(str(tmp_path / "pipeline")).transform(prompts(spark, 2)).collect()
        assert all(r.error is None and r.emb_error is None and len(r.embedding) == 32 for r in out)
        assert loaded.setCredentials(apiKey=KEY) is loaded


def test_credential_objects_do_not_show_secrets():
    assert "s3cr3t" not in repr(ApiKey(Secret("s3cr3t"))) + str(Secret("s3cr3t"))
    assert "s3cr3t" not in repr(StaticToken(Secret("s3cr3t")))
    provider = TokenProvider(lambda: "s3cr3t-token")
    provider.headers()
    assert "s3cr3t" not in repr(provider)
    assert token_expiry(jwt(123.0, "x")) == 123.0 and token_expiry("opaque") is None


def test_environment_is_clean_of_azure_variables():
    assert "AZURE_OPENAI_ENDPOINT" not in os.environ
