"""Loose ends of a first install (issue #27 point 8): the extras the README names, an editable install without
setuptools' warning box, and ``ai.run``'s output column. No Spark session."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_extras_the_readme_names_exist():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(dep.startswith("azure-identity") for dep in extras["entra"])
    assert {dep.split(">")[0] for dep in extras["notebook"]} == {"tqdm", "ipywidgets"}
    readme = (ROOT / "README.md").read_text()
    assert 'pip install "spark_aoai[entra]"' in readme and "`notebook` (tqdm and ipywidgets" in readme


def test_an_editable_install_prints_no_warning_box(tmp_path):
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "spark_aoai", tmp_path / "spark_aoai", ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "-q", "-e", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Editable installation" not in done.stderr and "*****" not in done.stderr, done.stderr
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import spark_aoai; print(spark_aoai.__file__)"],
        capture_output=True, text=True, timeout=60, check=True, cwd="/",
    )  # fmt: skip
    assert where.stdout.strip() == str(tmp_path / "spark_aoai" / "__init__.py")


def test_ai_run_writes_a_column_named_output():
    from spark_aoai import ai

    stage = ai.run(ai.Task("keywords", "List the keywords.", outputSchema="keywords array<string>"), "text")
    assert stage.getOrDefault("outputCol") == "output"
    assert "adds its answer in a column named `output`" in (ROOT / "README.md").read_text()
