# Sourced by the Quick start scripts: make .venv (once) and install spark_aoai with its dev extra (again only
# when pyproject.toml changed). Needs Python 3.10+ and Java 17 on the machine; everything else comes from PyPI.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON_BIN="${PYTHON:-python3}"
if ! command -v java >/dev/null 2>&1; then
  echo "Java 17 is needed for Spark: install it (e.g. apt-get install openjdk-17-jre-headless)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON_BIN" -m venv .venv
fi
STAMP=".venv/.spark_aoai-installed"
WANT="$(cat pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  echo "$WANT" > "$STAMP"
fi
export PYSPARK_PYTHON="$ROOT/.venv/bin/python"
export PYSPARK_DRIVER_PYTHON="$ROOT/.venv/bin/python"
