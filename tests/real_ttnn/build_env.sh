#!/usr/bin/env bash
# Builds the venv where tests/real_ttnn run against the real ttnn: Python 3.12 (ttnn 0.81.1 ships only
# cp310/cp312 wheels; the project's own venvs are 3.11), ttnn 0.81.1 with its own dependencies (no torch:
# the wheel does not need it, and PyPI's torch for 3.12 is the 3 GB CUDA build), this plugin --no-deps
# (its device layer imports only the standard library and ttnn; tests/real_ttnn/test_activation.py
# checks that neither vLLM nor torch is there), and pytest.
# Usage: build_env.sh VENV [PYTHON]. PYTHON defaults to pyenv's newest 3.12.x, else python3.12 on PATH.
# Called by `make ttnn-env` (Makefile variable TTNN_PYTHON overrides the interpreter).
set -euo pipefail

VENV=${1:?usage: build_env.sh VENV [PYTHON]}
PYTHON=${2:-}
TTNN_VERSION=0.81.1
WHEEL="ttnn-${TTNN_VERSION}-cp312-cp312-manylinux_2_34_x86_64.whl"
# PyPI's sha256 of that file: a cached copy is the file it claims to be.
WHEEL_SHA256=cc6df66162c8b5f5a5eb7347fe687b6095bf57bd64f9ba1be3d9b7f42e01d64f
# Outside the repository, like the embedded model's cache; about 100 MB, downloaded once.
WHEELS="${TT_VLLM_CACHE:-$HOME/.cache/tt-vllm-plugin}/wheels"
REPO="$(cd "$(dirname "$0")/../.." && pwd)"

find_python() {
    if command -v pyenv >/dev/null 2>&1; then
        local prefix
        if prefix="$(pyenv prefix "$(pyenv latest 3.12 2>/dev/null)" 2>/dev/null)" && [ -x "$prefix/bin/python" ]; then
            echo "$prefix/bin/python"
            return 0
        fi
    fi
    command -v python3.12 || true
}

[ -n "$PYTHON" ] || PYTHON="$(find_python)"
if [ -z "$PYTHON" ] || ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
    echo "ttnn-env: needs a Python 3.12 (ttnn ${TTNN_VERSION} has cp310/cp312 wheels only); found '${PYTHON:-none}'." >&2
    echo "ttnn-env: install one with 'pyenv install 3.12' or pass it: make ttnn-env TTNN_PYTHON=/path/to/python3.12" >&2
    exit 1
fi

start=$(date +%s)
if ! { [ -f "$WHEELS/$WHEEL" ] && echo "$WHEEL_SHA256  $WHEELS/$WHEEL" | sha256sum --check --status; }; then
    mkdir -p "$WHEELS"
    staging="$(mktemp -d "$WHEELS/.download-XXXXXX")"
    trap 'rm -rf "$staging"' EXIT
    echo "ttnn-env: fetching $WHEEL into $WHEELS (once)"
    # --no-cache-dir: our cache keeps the file; pip's would be a second 100 MB copy.
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --no-cache-dir \
        --disable-pip-version-check "ttnn==${TTNN_VERSION}" -d "$staging"
    echo "$WHEEL_SHA256  $staging/$WHEEL" | sha256sum --check --status \
        || { echo "ttnn-env: $WHEEL does not have sha256 $WHEEL_SHA256" >&2; exit 1; }
    mv "$staging/$WHEEL" "$WHEELS/$WHEEL"
fi

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" "$WHEELS/$WHEEL" pytest
"${PIP[@]}" --no-deps -e "$REPO"
"$VENV/bin/python" -c "import tt_vllm_plugin.device.ttnn" \
    || { echo "ttnn-env: the plugin's device layer does not import in $VENV" >&2; exit 1; }
echo "ttnn-env: $VENV ready in $(( $(date +%s) - start )) s ($(du -sh "$VENV" | cut -f1); $("$PYTHON" -V), ttnn ${TTNN_VERSION})"
