# Sourced by scripts/test and scripts/run-example: create or refresh .venv.
# The venv is rebuilt when it is missing, or when pyproject.toml or the
# Python interpreter changed since the last install (the stamp file).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="${FASTAPI_SECURE_VENV:-$ROOT/.venv}"
STAMP_FILE="$VENV/.fastapi-secure-stamp"
want_stamp="$("$PYTHON" -c 'import sys, hashlib, pathlib; print(sys.version.split()[0], hashlib.sha256(pathlib.Path(sys.argv[1]).read_bytes()).hexdigest())' "$ROOT/pyproject.toml")"
if [[ ! -x "$VENV/bin/python" ]] || [[ "$(cat "$STAMP_FILE" 2>/dev/null || true)" != "$want_stamp" ]]; then
    echo ">> preparing virtual environment in $VENV" >&2
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT[dev]"
    echo "$want_stamp" > "$STAMP_FILE"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
