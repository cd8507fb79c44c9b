"""ChatCompletion on a standalone Spark cluster on loopback: executors in other processes get code and config."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from spark_aoai.emulator import Emulator, chat_reply

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def build_package_zip(target: Path) -> Path:
    path = target / "spark_aoai.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for file in (ROOT / "spark_aoai").rglob("*.py"):
            archive.write(file, file.relative_to(ROOT))
    return path


@pytest.mark.cluster
def test_chat_on_a_standalone_cluster(tmp_path):
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    spark_class = spark_home / "bin" / "spark-class"
    if not os.access(spark_class, os.X_OK):
        spark_class.chmod(0o755)
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOG_DIR": str(tmp_path / "logs"),
    }
    master_port, worker_work = free_port(), tmp_path / "work"
    worker_work.mkdir()
    logs = (tmp_path / "master.log").open("w"), (tmp_path / "worker.log").open("w")
    master = subprocess.Popen(
        [
            str(spark_class),
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(master_port),
            "--webui-port",
            str(free_port()),
        ],
        env=env,
        stdout=logs[0],
        stderr=subprocess.STDOUT,
    )
    worker = None
    try:
        wait_for_port(master_port)
        worker = subprocess.Popen(
            [
                str(spark_class),
                "org.apache.spark.deploy.worker.Worker",
                f"spark://127.0.0.1:{master_port}",
                "--host",
                "127.0.0.1",
                "--work-dir",
                str(worker_work),
                "--cores",
                "2",
                "--memory",
                "1g",
                "--webui-port",
                str(free_port()),
            ],
            env=env,
            stdout=logs[1],
            stderr=subprocess.STDOUT,
        )
        package = build_package_zip(tmp_path)
        with Emulator(api_key="cluster-key") as emu:
            job = subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "tests" / "cluster_job.py"),
                    f"spark://127.0.0.1:{master_port}",
                    emu.endpoint,
                    str(package),
                ],
                env={**env, "PYTHONPATH": ""},
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert job.returncode == 0, job.stderr[-3000:]
            result = json.loads(job.stdout.strip().splitlines()[-1])
            assert emu.stats()["requests"] == {"chat 200": 60}
    finally:
        for process in (worker, master):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
        for log in logs:
            log.close()
        shutil.rmtree(worker_work, ignore_errors=True)

    rows = result["rows"]
    assert sorted(r["id"] for r in rows) == list(range(60))
    for r in rows:
        assert r["error"] is None
        assert r["response"] == chat_reply([{"role": "user", "content": r["prompt"]}])
    assert result["driver_pid"] not in result["executor_pids"]
    assert all("spark_aoai.zip" in module for module in result["executor_modules"])
