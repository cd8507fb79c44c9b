"""ChatCompletion and Embedding through Spark Connect: a server started by the test, a remote client session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spark_aoai.emulator import Emulator, chat_reply
from tests.test_cluster import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("grpc", reason="Spark Connect's client needs pyspark[connect] (in the dev extra)")


@pytest.mark.cluster
def test_transformers_run_on_spark_connect(tmp_path):
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    port = free_port()
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_NO_DAEMONIZE": "1",
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOG_DIR": str(tmp_path),
        "SPARK_PID_DIR": str(tmp_path),
    }
    for script in (spark_home / "bin").iterdir():
        script.chmod(0o755)
    for script in (spark_home / "sbin").iterdir():
        script.chmod(0o755)
    log = (tmp_path / "connect.log").open("w")
    server = subprocess.Popen(
        [
            str(spark_home / "sbin" / "start-connect-server.sh"),
            "--master",
            "local[2]",
            "--conf",
            f"spark.connect.grpc.binding.port={port}",
            "--conf",
            "spark.connect.grpc.binding.address=127.0.0.1",
            "--conf",
            "spark.ui.enabled=false",
            "--conf",
            "spark.driver.host=127.0.0.1",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_port(port, timeout=120)
        with Emulator(api_key="connect-key") as emu:
            job = subprocess.run(
                [sys.executable, str(ROOT / "tests" / "connect_job.py"), f"sc://127.0.0.1:{port}", emu.endpoint],
                env={**env, "PYTHONPATH": str(ROOT)},
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert job.returncode == 0, job.stderr[-3000:]
            result = json.loads(job.stdout.strip().splitlines()[-1])
            assert emu.stats()["requests"]["chat 200"] == 19 + 20 + 3 + 4 + 2  # batch mode sent none online
            assert emu.stats()["batch_lines"] == {"chat 200": 20}
    finally:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
        log.close()
    assert "connect" in result["session"]
    assert sorted(r["id"] for r in result["rows"]) == list(range(20))
    for r in result["rows"]:
        assert r["error"] is None and r["response"] == chat_reply([{"role": "user", "content": r["prompt"]}])
    assert result["vectors"] == [8] * 20
    assert result["as_vector"] == [8, None] and result["as_vector_errors"] == [None, "invalid_input"]
    assert result["reloaded_errors"] == [None] * 3  # save/load through the DataFrame API
    assert result["piped"] == [[True, True, 8]] * 4
    assert [ok for ok, _ in result["udf"]] == [True, True] and all(tokens > 0 for _, tokens in result["udf"])
    assert result["systemic"]["status"] == 401  # failure_of reads the row error through Connect's exception
    stats = result["statistics"]  # rows through observe, requests and tokens through the tasks' records
    assert (stats["rows"], stats["rows_failed"], stats["errors_by_code"]) == (20, 1, {"invalid_input": 1})
    assert (stats["requests"], stats["throttled"], stats["missing"]) == (19, 0, [])
    assert stats["total_tokens"] == stats["usage_total"] > 0
    online = sorted((r["id"], r["response"], True) for r in result["rows"])
    assert [tuple(r) for r in result["batch"]] == online  # batch mode through Connect: the online answers
