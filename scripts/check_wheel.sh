#!/usr/bin/env bash
# CI: build the wheel and check it as a user on a Spark runtime gets it: a fresh virtual environment without
# pyspark, holding only the wheel and the runtime dependencies pip brings (requests, pandas, pyarrow, numpy).
# One line per check; non-zero when any fails. Needs Python 3.10+ with venv (PYTHON, default python3) and git.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON_BIN="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
WORK="$(mktemp -d "${TMPDIR:-/tmp}/spark_aoai-wheel.XXXXXX")"
EMULATOR_PID=""

cleanup() {
  if [ -n "$EMULATOR_PID" ]; then
    kill "$EMULATOR_PID" 2>/dev/null || true
    wait "$EMULATOR_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

failures=0
ok() { echo "ok    $*"; }
failed() { echo "FAIL  $*"; failures=$((failures + 1)); }
# Stop at once when a step the others depend on fails, showing its output.
fatal() {
  echo "FAIL  $1"
  [ -f "${2:-}" ] && tail -n 40 "$2" | sed 's/^/      /'
  exit 1
}

# Build from a copy of the files git knows (tracked, or new and not ignored): a stale build/ or egg-info in the
# checkout cannot leak into the wheel, and the checkout is left as it was. Without git: the tree minus the
# usual build and environment directories.
mkdir "$WORK/src" "$WORK/dist"
if (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard) >"$WORK/files" 2>/dev/null; then
  while IFS= read -r -d '' name; do
    if [ -f "$ROOT/$name" ]; then printf '%s\0' "$name"; fi
  done <"$WORK/files" | tar -C "$ROOT" --null -T - -cf - | tar -C "$WORK/src" -xf -
else
  tar -C "$ROOT" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist --exclude='*.egg-info' \
    --exclude=__pycache__ -cf - . | tar -C "$WORK/src" -xf -
fi

"$PYTHON_BIN" -m venv "$WORK/venv" || fatal "create a virtual environment with $PYTHON_BIN"
PY="$WORK/venv/bin/python"
"$PY" -m pip wheel --no-deps -w "$WORK/dist" "$WORK/src" >"$WORK/build.log" 2>&1 ||
  fatal "build the wheel (pip wheel . --no-deps)" "$WORK/build.log"
WHEEL="$(ls "$WORK"/dist/spark_aoai-*.whl)"
ok "built $(basename "$WHEEL")"

missing="$("$PY" -I - "$WHEEL" <<'EOF'
import sys
import zipfile

names = zipfile.ZipFile(sys.argv[1]).namelist()
wanted = ["spark_aoai/py.typed", "spark_aoai/emulator/__init__.py", "spark_aoai/emulator/__main__.py"]
missing = [n for n in wanted if n not in names]
missing += [] if any(n.endswith(".dist-info/licenses/LICENSE") for n in names) else ["*.dist-info/licenses/LICENSE"]
print(" ".join(missing))
EOF
)" || fatal "read the wheel's file list"
if [ -z "$missing" ]; then
  ok "the wheel holds spark_aoai/py.typed, the emulator package and LICENSE"
else
  failed "the wheel lacks: $missing"
fi

"$PY" -m pip install "$WHEEL" >"$WORK/install.log" 2>&1 ||
  fatal "pip install the wheel (no extras) into a fresh venv" "$WORK/install.log"
versions="$("$PY" -I -c 'import numpy, pandas, pyarrow, requests
print(f"requests {requests.__version__}, pandas {pandas.__version__}, pyarrow {pyarrow.__version__}, numpy {numpy.__version__}")' 2>&1)" ||
  fatal "import the runtime dependencies: $versions"
ok "pip install $(basename "$WHEEL") into a fresh venv brought $versions"

# Every check runs isolated (-I: no PYTHONPATH, no current directory on the path) from the temp directory,
# so it sees the installed wheel and never the checkout.
cd "$WORK"
if "$PY" -I -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('pyspark') is not None)"; then
  ok "pyspark is not installed"
else
  failed "pyspark is installed in the fresh venv: the wheel's dependencies pulled it in"
fi

if where="$("$PY" -I -c "import spark_aoai, spark_aoai.emulator; print(spark_aoai.__file__)" 2>&1)" &&
  [[ "$where" == "$WORK/venv/"* ]]; then
  ok "import spark_aoai, spark_aoai.emulator (from ${where#"$WORK/"})"
else
  failed "import spark_aoai, spark_aoai.emulator: $where"
fi

if "$PY" -I -m spark_aoai.emulator --help >"$WORK/help.log" 2>&1; then
  ok "python -m spark_aoai.emulator --help exits 0"
else
  failed "python -m spark_aoai.emulator --help: $(tail -n 3 "$WORK/help.log")"
fi

if message="$("$PY" -I - <<'EOF' 2>&1
try:
    from spark_aoai import ChatCompletion  # noqa: F401
except ImportError as exc:
    text = str(exc)
    print(text)
    raise SystemExit(0 if "spark_aoai[spark]" in text else "the message does not name spark_aoai[spark]")
raise SystemExit("no ImportError")
EOF
)"; then
  ok "from spark_aoai import ChatCompletion raises ImportError: $message"
else
  failed "from spark_aoai import ChatCompletion without pyspark: $message"
fi

PORT="$("$PY" -I -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")"
"$PY" -I -m spark_aoai.emulator --port "$PORT" --quiet >"$WORK/emulator.log" 2>&1 &
EMULATOR_PID=$!
if answer="$("$PY" -I - "$PORT" <<'EOF' 2>&1
import json
import sys
import time
import urllib.error
import urllib.request

url = f"http://127.0.0.1:{sys.argv[1]}/openai/deployments/gpt-4o/chat/completions?api-version=2025-04-01-preview"
body = json.dumps({"messages": [{"role": "user", "content": "Is the wheel installed?"}]}).encode()
deadline = time.monotonic() + 20
while True:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", "api-key": "k"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, answer = response.status, json.load(response)
        break
    except urllib.error.URLError as exc:
        if isinstance(exc, urllib.error.HTTPError) or time.monotonic() > deadline:
            raise SystemExit(f"no 200: {exc}")
        time.sleep(0.1)
content = answer["choices"][0]["message"]["content"]
if status != 200 or not isinstance(content, str) or not content:
    raise SystemExit(f"status {status}, content {content!r}")
print(f"{status} {content!r}")
EOF
)"; then
  ok "emulator on 127.0.0.1:$PORT answered a chat completion: $answer"
else
  failed "emulator on 127.0.0.1:$PORT, one chat completion: $answer $(tail -n 5 "$WORK/emulator.log")"
fi
kill "$EMULATOR_PID" 2>/dev/null || true
wait "$EMULATOR_PID" 2>/dev/null || true
EMULATOR_PID=""
if "$PY" -I -c "import socket, sys; s = socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $PORT)) == 0)"; then
  ok "emulator stopped"
else
  failed "emulator still listening on 127.0.0.1:$PORT after kill"
fi

if [ "$failures" -gt 0 ]; then
  echo "check_wheel: $failures check(s) failed"
  exit 1
fi
echo "check_wheel: all checks passed"
