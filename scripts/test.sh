#!/usr/bin/env bash
# Quick start 2: lint, type-check and run the whole test suite.
source "$(dirname "$0")/_setup.sh"
.venv/bin/python -m ruff check spark_aoai tests examples benchmarks conftest.py
.venv/bin/python -m mypy
exec .venv/bin/python -m pytest "$@"
