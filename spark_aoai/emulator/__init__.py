"""An emulator of the Azure OpenAI data-plane REST contract, for offline pipelines and tests.

Run it from a shell::

    python -m spark_aoai.emulator --port 8765 [--host 127.0.0.1] [--api-key KEY]

or from Python, on a free port, in a background thread (default) or a child process::

    from spark_aoai.emulator import Emulator, Faults

    with Emulator(faults=Faults(error_500_rate=0.1)) as emu:
        ...  # point the client at emu.endpoint
        emu.stats()["requests"]   # {"chat 200": 97, "chat 500": 11}

It serves the Files and Batch APIs too (``/openai/files``, ``/openai/batches``), shaped by :class:`BatchSettings`;
their lines are counted apart (``emu.stats()["batch_lines"]``), never as online requests.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import Any

import requests

from spark_aoai.emulator._batches import batch_line_fails
from spark_aoai.emulator._model import chat_reply, embed_text, embed_texts, embedding_dimensions
from spark_aoai.emulator._server import EmulatorServer
from spark_aoai.emulator._settings import BatchSettings, Faults, RateLimit, Settings, settings_to_dict
from spark_aoai.emulator._structured import value_for_schema

__all__ = [
    "BatchSettings",
    "Emulator",
    "EmulatorServer",
    "Faults",
    "RateLimit",
    "Settings",
    "batch_line_fails",
    "chat_reply",
    "embed_text",
    "embed_texts",
    "embedding_dimensions",
    "value_for_schema",
]

_KEEP: Any = object()


class Emulator:
    """Start the emulator on ``host`` and a free port; stop it on exit.

    Parameters
    ----------
    api_key : str, optional
        When set, requests must carry it as ``api-key``, ``Authorization: Bearer`` or ``MwcToken`` (Fabric).
    rate_limit, faults : RateLimit, Faults, optional
        Start-up settings; change them later with :meth:`configure`.
    deployments : dict, optional
        Deployment name -> model (``{"chat": "gpt-4o", "emb": "text-embedding-3-small"}``): a strict
        emulator that refuses other deployments (404 ``DeploymentNotFound``) and unpublished api-versions.
        Without it the deployments named after a model the emulator knows are served (``gpt-4o``,
        ``gpt-4o-2024-08-06``, ``text-embedding-3-small``), each as that model, and any other name is a 404
        ``DeploymentNotFound``, as Azure answers a misspelt deployment.
    extra_deployments : dict, optional
        Deployment name -> model served besides the known model names when there is no ``deployments``
        registry (``{"my-chat": "gpt-4o"}``); CLI ``--extra-deployment my-chat=gpt-4o``.
    batch : BatchSettings, optional
        The Batch API's limits (Azure's 100,000 lines, 200 MB), how long a batch takes, and its faults.
    process : bool
        Run the server in a child process, so that it does not share the caller's GIL (benchmarks).
    tls : (certfile, keyfile), optional
        Serve HTTPS with this PEM certificate and key .
    """

    def __init__(
        self,
        api_key: str | None = None,
        rate_limit: RateLimit | None = None,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        process: bool = False,
        tls: tuple[str, str] | None = None,
        deployments: dict[str, str] | None = None,
        batch: BatchSettings | None = None,
        extra_deployments: dict[str, str] | None = None,
    ) -> None:
        self.host, self.port, self.process, self.tls = host, port, process, tls
        self.settings = Settings(
            api_key=api_key,
            rate_limit=rate_limit or RateLimit(),
            faults=faults or Faults(),
            deployments=dict(deployments) if deployments is not None else None,
            batch=batch or BatchSettings(),
            extra_deployments=dict(extra_deployments or {}),
        )
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._http = requests.Session()
        self._server_key: str | None = None  # the key the running server requires of control requests

    @property
    def endpoint(self) -> str:
        """The base URL to use as ``endpoint`` (``http://127.0.0.1:PORT``)."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def start(self) -> Emulator:
        if self.process:
            self._start_process()
        else:
            # the server gets its own copy: settings change there only through /_emulator/config
            self._server = EmulatorServer(
                (self.host, self.port), Settings.from_dict(settings_to_dict(self.settings)), self.tls
            )
            self._server_key = self.settings.api_key
            self.port = int(self._server.server_address[1])
            self._thread = threading.Thread(target=self._server.serve_forever, name="aoai-emulator", daemon=True)
            self._thread.start()
        self.configure()
        return self

    def _start_process(self) -> None:
        import socket

        if not self.port:
            with socket.socket() as probe:
                probe.bind((self.host, 0))
                self.port = int(probe.getsockname()[1])
        command = [
            sys.executable,
            "-m",
            "spark_aoai.emulator",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--quiet",
        ]
        if self.tls:
            command += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
        self._child = subprocess.Popen(command)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self._control("get", "/_emulator/health").ok:
                    return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("the emulator process did not start within 30 s")

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._child is not None:
            self._child.terminate()
            self._child.wait(timeout=10)
            self._child = None
        self._http.close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def configure(
        self,
        api_key: Any = _KEEP,
        rate_limit: RateLimit | None = None,
        faults: Faults | None = None,
        deployments: Any = _KEEP,
        batch: BatchSettings | None = None,
        extra_deployments: dict[str, str] | None = None,
    ) -> None:
        """Replace settings (those not given are kept) and reset rate-limit buckets.

        Batches already created keep the settings they were created with.
        """
        if api_key is not _KEEP:
            self.settings.api_key = api_key
        if deployments is not _KEEP:
            self.settings.deployments = dict(deployments) if deployments is not None else None
        if rate_limit is not None:
            self.settings.rate_limit = rate_limit
        if faults is not None:
            self.settings.faults = faults
        if batch is not None:
            self.settings.batch = batch
        if extra_deployments is not None:
            self.settings.extra_deployments = dict(extra_deployments)
        body = json.dumps(settings_to_dict(self.settings))
        self._control("post", "/_emulator/config", data=body).raise_for_status()
        self._server_key = self.settings.api_key

    def stats(self, inputs: bool = True) -> dict[str, Any]:
        """What the emulator received: ``requests`` by ``"route status"``, and per-input counts.

        ``inputs`` and ``answered_inputs`` map each input text (the last message of a chat request) to how
        often it was received and answered with a 200; ``inputs_per_request`` lists each request's input count.
        A dropped connection counts as status 0, a malformed 200 as -200.

        The Batch API has its own keys, and its lines are in none of the above: ``files`` (uploads),
        ``batch_api`` (calls by ``"METHOD route"``: ``"GET batches/{id}"``), ``batches`` (``created`` and each
        batch's final status), ``batch_lines`` (``"chat 200"``, ``"chat 400"``, ``"chat request_timeout"``,
        ``"chat batch_expired"``, ...), ``batch_billed_tokens`` and ``batch_answered_inputs``.
        """
        response = self._control("get", "/_emulator/stats", params={"inputs": int(inputs)})
        response.raise_for_status()
        return dict(response.json())

    def reset_stats(self) -> None:
        self._control("post", "/_emulator/reset").raise_for_status()

    def _control(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A request to the emulator's own control paths (its certificate is trusted for these)."""
        verify = self.tls[0] if self.tls else True
        headers = {"api-key": self._server_key} if self._server_key else {}
        url = f"{self.endpoint}{path}"
        return self._http.request(method, url, timeout=30, verify=verify, headers=headers, **kwargs)
