#!/usr/bin/env bash
# Interop tests: drive atserver with the official Python SDK (atsdk, PyPI).
#
#   bash tests/interop/run.sh [extra pytest args]
#
# Needs python3 (>= 3.10) with pip and PyPI access; loopback only. Env:
#   ATSERVER_BIN   server binary (default target/debug/atserver; build it first)
#   INTEROP_VENV   virtualenv to create/reuse (default target/interop-venv)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
repo_root=$(pwd)

venv="${INTEROP_VENV:-target/interop-venv}"
export ATSERVER_BIN="${ATSERVER_BIN:-target/debug/atserver}"
case "$ATSERVER_BIN" in /*) ;; *) ATSERVER_BIN="$repo_root/$ATSERVER_BIN" ;; esac

if [ ! -x "$ATSERVER_BIN" ]; then
    echo "run.sh: atserver binary not found at $ATSERVER_BIN (cargo build, or set ATSERVER_BIN)" >&2
    exit 1
fi

python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
    echo "run.sh: creating virtualenv $venv" >&2
    # Debian ships venv without ensurepip unless python3-venv is installed: fall back to a
    # pip-less venv and let the system pip install into it (pip >= 22.3 has --python).
    if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
        rm -rf "$venv"
        "$python" -m venv --without-pip "$venv"
    fi
fi

if "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    pip=("$venv/bin/python" -m pip)
else
    pip=("$python" -m pip --python "$venv/bin/python")
fi
"${pip[@]}" install --quiet --disable-pip-version-check -r tests/interop/requirements.txt

# Keep the source tree clean: no __pycache__, no .pytest_cache.
export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" -m pytest -q --tb=short -p no:cacheprovider tests/interop "$@"
