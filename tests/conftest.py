"""Shared test set-up: the plugin on the host device, and the embedded default model."""

from __future__ import annotations

import os

# Before anything imports vLLM: the platform is chosen once per process, at first use.
os.environ.setdefault("VLLM_PLUGINS", "tt")
os.environ.setdefault("TT_VLLM_DEVICE", "host")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def default_model_path() -> str:
    from tt_vllm_plugin.models.default import default_model_path as prepare

    return str(prepare())
