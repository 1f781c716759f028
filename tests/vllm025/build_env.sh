#!/usr/bin/env bash
# Builds a venv the way a Tenstorrent host builds vLLM (Tenstorrent's docs/install-vllm-tt.sh):
# vLLM 0.25.1 from its sdist with VLLM_TARGET_DEVICE=empty (pure Python, no vllm._C), installed
# --no-deps beside an existing torch, then its requirements/common.txt under a torch pin, then this
# plugin WITHOUT its `host` extra. Usage: build_env.sh VENV [PYTHON]. Called by `make vllm025`.
set -euo pipefail

VENV=${1:?usage: build_env.sh VENV [PYTHON]}
PYTHON=${2:-python3.11}
VLLM_VERSION=0.25.1
TORCH_PIN="torch==2.13.0+cpu"  # the CPU wheel on this machine's disk (pip's find-links)
# The sdist's address on PyPI, as `pip download -vv --no-deps --no-binary :all: vllm==0.25.1` prints it
# (pip itself cannot save it: preparing its metadata needs the build pinned to torch 2.11).
SDIST_URL="https://files.pythonhosted.org/packages/bf/ce/542315fe84e23a73b919d64794350233d4f1c70b2544ba0afd5348005aff/vllm-${VLLM_VERSION}.tar.gz"
SDIST_SHA256=ddbdec3f1c0f21afa70b7eb6ddf3faa29d26b1302ee4b5d5e00ec3af41b0c2e4
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
    echo "vllm025: fetching vllm-${VLLM_VERSION}.tar.gz into $DOWNLOADS (once)"
    "$PYTHON" - "$SDIST_URL" "$SDIST" "$SDIST_SHA256" <<'PYEOF'
import hashlib, os, sys, urllib.request
url, target, expected = sys.argv[1:4]
data = urllib.request.urlopen(url, timeout=300).read()
digest = hashlib.sha256(data).hexdigest()
if digest != expected:
    sys.exit(f"vllm025: {url} has sha256 {digest}, expected {expected}")
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
    # The sdist's build-system pins torch 2.11 (not reachable here), so no build isolation: its build
    # requirements by hand instead.
    "${PIP[@]}" -c "$VENV/constraints.txt" "cmake>=3.26.1" ninja "packaging>=24.2" \
        "setuptools>=77.0.3,<81" "setuptools-scm>=8.0" "setuptools-rust>=1.9.0" wheel jinja2
    # From the file: asked by name, pip refuses the build (its metadata says 0.25.1+empty).
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
# (tests/vllm025/test_environment.py compares the two records).
"${PIP[@]}" -e "$REPO"
# The STAND-IN for tt-xla's Forge plugin (distribution vllm_tt, serving through this plugin's host
# device; tests/fixtures/forge_standin): tt-serve's `forge` backend in a second environment. Not
# editable, so its RECORD covers its files like a real install's.
"${PIP[@]}" --no-deps --no-build-isolation "$REPO/tests/fixtures/forge_standin"
record_versions "$VENV/tt-versions-after.json"
# The test tools (the tests check the versions again, after these too).
"${PIP[@]}" -c "$VENV/constraints.txt" pytest openai requests
echo "vllm025: $VENV ready in $(( $(date +%s) - start )) s: $(cat "$VENV/tt-versions-after.json" | tr -d '\n ')"
