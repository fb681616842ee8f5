#!/usr/bin/env bash
# Create .venv (if needed) and install neurovox with its test dependencies.
# Idempotent: a second call only reinstalls when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating virtual environment in .venv"
    "$PY" -m venv .venv
fi
# pip prints a warning per package for local index folders that do not exist on this machine; hide them.
pip_install() { .venv/bin/python -m pip install -q "$@" 2>&1 | { grep -v "is ignored: it is neither" >&2 || true; }; return "${PIPESTATUS[0]}"; }
stamp=.venv/.neurovox-installed
want=$(sha256sum pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "[setup] installing neurovox and its dependencies (first time: a few minutes)"
    pip_install --upgrade pip
    # Pin the CPU build of PyTorch: a bare `torch` requirement would pull a multi-GB CUDA build.
    # On a GPU machine, install the torch build you want first; this line then changes nothing.
    .venv/bin/python -c "import torch" 2>/dev/null || pip_install "torch==2.13.0"
    pip_install -e ".[test,whisper]"
    echo "$want" > "$stamp"
fi
# The listening-test test drives headless Chromium (Debian's chromium + chromium-driver). Installed here when
# this runs as root with apt-get (CI, containers); elsewhere that one test says what to install and is skipped.
if ! command -v chromedriver >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "[setup] installing chromium and chromium-driver (apt-get; for the listening-test test)"
        { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; } \
            >/dev/null 2>&1 || echo "[setup] apt-get could not install chromium: the browser test will be skipped" >&2
    else
        echo "[setup] note: without chromium and chromium-driver (apt-get install chromium chromium-driver) the" \
             "listening-test browser test is skipped"
    fi
fi
