#!/usr/bin/env bash
# Builds a venv the way a Tenstorrent host builds vLLM (Tenstorrent's docs/install-vllm-tt.sh): vLLM from
# its sdist with VLLM_TARGET_DEVICE=empty (pure Python, no vllm._C), installed --no-deps beside an existing
# torch, then its requirements/common.txt under a torch pin, then this plugin WITHOUT its `host` extra.
# Usage: build_env.sh VLLM_VERSION VENV [PYTHON] [--forge-standin]. Called by `make vllm025` (026, 034).
# --forge-standin also installs the stand-in for tt-xla's Forge plugin (tests/fixtures/forge_standin).
set -euo pipefail

VLLM_VERSION=${1:?usage: build_env.sh VLLM_VERSION VENV [PYTHON] [--forge-standin]}
VENV=${2:?usage: build_env.sh VLLM_VERSION VENV [PYTHON] [--forge-standin]}
PYTHON=${3:-python3.11}
FORGE_STANDIN=${4:-}
# torch stays the CPU 2.13.0 wheel on this machine's disk (pip's find-links) whatever the vLLM pins (0.34
# pins 2.14): on a Tenstorrent host torch is tt-metal's, not vLLM's.
TORCH_PIN="torch==2.13.0+cpu"
# Each sdist's address on PyPI, as `pip download -vv --no-deps --no-binary :all: vllm==X` prints it (pip
# itself cannot save it: preparing its metadata needs the build's pinned torch), and its sha256.
PYPI=https://files.pythonhosted.org/packages
case "$VLLM_VERSION" in
    0.25.1) SDIST_URL=$PYPI/bf/ce/542315fe84e23a73b919d64794350233d4f1c70b2544ba0afd5348005aff/vllm-0.25.1.tar.gz
            SDIST_SHA256=ddbdec3f1c0f21afa70b7eb6ddf3faa29d26b1302ee4b5d5e00ec3af41b0c2e4 ;;
    0.26.0) SDIST_URL=$PYPI/cd/72/fa30f8459d11ae206f1a20bd0ac7ed1b9e390b695fa3dfc9ef6056de0cfe/vllm-0.26.0.tar.gz
            SDIST_SHA256=23e9fa19d7e20ce7dcc1c074d41503e2116d23f19e688f5d5ea91b741f958502 ;;
    0.34.0) SDIST_URL=$PYPI/92/21/6e0b077dc4a0b28f5a8ce8bb352a38d7196650d681fd4faa87f8dc622eff/vllm-0.34.0.tar.gz
            SDIST_SHA256=fcad848b246a9d8652b47e6425af92334dc02492f9802720f54e27b823cf0113 ;;
    *) echo "build_env.sh: no sdist recorded for vLLM $VLLM_VERSION (known: 0.25.1, 0.26.0, 0.34.0)" >&2; exit 2 ;;
esac
TAG="vllm-${VLLM_VERSION}"
# Outside the repository, like the embedded model's cache.
DOWNLOADS="${TT_VLLM_CACHE:-$HOME/.cache/tt-vllm-plugin}/downloads"
SDIST="$DOWNLOADS/vllm-${VLLM_VERSION}.tar.gz"
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --quiet)
BASE_STAMP="$VENV/.vllm-${VLLM_VERSION}-built"

fetch_sdist() {
    [ -f "$SDIST" ] && return 0
    mkdir -p "$DOWNLOADS"
    echo "$TAG: fetching vllm-${VLLM_VERSION}.tar.gz into $DOWNLOADS (once)"
    "$PYTHON" - "$SDIST_URL" "$SDIST" "$SDIST_SHA256" <<'PYEOF'
import hashlib, os, sys, urllib.request
url, target, expected = sys.argv[1:4]
data = urllib.request.urlopen(url, timeout=300).read()
digest = hashlib.sha256(data).hexdigest()
if digest != expected:
    sys.exit(f"{url} has sha256 {digest}, expected {expected}")
with open(target + ".part", "wb") as out:
    out.write(data)
os.replace(target + ".part", target)
PYEOF
}

# Versions of vLLM and torch as the environment reports them (distribution metadata and modules).
record_versions() {
    # VLLM_PLUGINS empty: no plugin runs while vLLM is imported, so the record is vLLM's and torch's alone.
    VLLM_PLUGINS= "$PY" - "$1" <<'PYEOF'
import importlib.metadata as md, json, sys
import torch, vllm
json.dump({"vllm": md.version("vllm"), "vllm_module": vllm.__version__,
           "torch": md.version("torch"), "torch_module": torch.__version__},
          open(sys.argv[1], "w"), indent=1)
PYEOF
}

build_base() {
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "${PIP[@]}" --upgrade pip
    echo "$TORCH_PIN" >"$VENV/constraints.txt"
    "${PIP[@]}" -c "$VENV/constraints.txt" torch==2.13.0
    # The sdist's build-system pins its own torch (not reachable here), so no build isolation: its build
    # requirements by hand instead.
    "${PIP[@]}" -c "$VENV/constraints.txt" "cmake>=3.26.1" ninja "packaging>=24.2" \
        "setuptools>=77.0.3,<81" "setuptools-scm>=8.0" "setuptools-rust>=1.9.0" wheel jinja2
    # From the file: asked by name, pip refuses the build (its metadata says X+empty).
    VLLM_TARGET_DEVICE=empty "${PIP[@]}" --no-deps --no-build-isolation -c "$VENV/constraints.txt" "$SDIST"
    local src
    src="$(mktemp -d)"
    tar -xzf "$SDIST" -C "$src" "vllm-${VLLM_VERSION}/requirements/common.txt"
    "${PIP[@]}" -c "$VENV/constraints.txt" -r "$src/vllm-${VLLM_VERSION}/requirements/common.txt"
    rm -rf "$src"
    touch "$BASE_STAMP"
}

start=$(date +%s)
fetch_sdist
[ -f "$BASE_STAMP" ] || build_base
record_versions "$VENV/tt-versions-before.json"
# The plugin with its own dependencies and no `host` extra: nothing here may replace vLLM or torch
# (tests/tenstorrent_vllm/test_environment.py compares the two records).
"${PIP[@]}" -e "$REPO"
if [ "$FORGE_STANDIN" = --forge-standin ]; then
    # The STAND-IN for tt-xla's Forge plugin (distribution vllm_tt, serving through this plugin's host
    # device): tt-serve's `forge` backend in a second environment. Not editable, so its RECORD covers its
    # files like a real install's. --no-deps: it pins this environment's vLLM, as tt-xla's does.
    "${PIP[@]}" --no-deps --no-build-isolation "$REPO/tests/fixtures/forge_standin"
fi
record_versions "$VENV/tt-versions-after.json"
# The test tools (the tests check the versions again, after these too).
"${PIP[@]}" -c "$VENV/constraints.txt" pytest openai requests
echo "$TAG: $VENV ready in $(( $(date +%s) - start )) s, $(du -sh "$VENV" | cut -f1):" \
    "$(tr -d '\n ' <"$VENV/tt-versions-after.json")"
