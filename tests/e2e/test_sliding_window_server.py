"""Models with sliding windows or mixtures of experts through vLLM's OpenAI server on the host device,
token-identical to transformers: Gemma 3 (sliding and global layers, each with its RoPE), Mistral (every
layer windowed), GPT-OSS (sliding and full layers, attention sinks, experts) and Qwen3-MoE (experts).

The long-prompt batches of long_prompts.py, each batch's requests sent at once so the server batches them:
prompts longer than the windows, a prefix the second batch reuses from the prefix cache (seen in the usage's
cached tokens), prefill in chunks of a 32-token step budget. One server per model. The same prompts through
vllm.LLM, for every architecture: test_engine_architectures.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.e2e.long_prompts import FIRST, MAX_BATCHED_TOKENS, MAX_TOKENS, PREFIX_TOKENS, SECOND
from tests.e2e.random_models import save_random_model
from tests.e2e.reference import transformers_greedy
from tests.e2e.server import RunningServer, host_plugin_server

pytestmark = pytest.mark.server

ARCHITECTURES = ["Gemma3ForCausalLM", "GptOssForCausalLM", "MistralForCausalLM", "Qwen3MoeForCausalLM"]


@pytest.fixture(scope="module", params=ARCHITECTURES)
def served(request, tmp_path_factory) -> Iterator[tuple[str, RunningServer, list[list[int]]]]:
    arch = request.param
    folder = str(save_random_model(arch, Path(tmp_path_factory.mktemp(arch))))
    expected = transformers_greedy(folder, FIRST + SECOND, MAX_TOKENS)
    with host_plugin_server(
        folder,
        tmp_path_factory.mktemp(f"server_{arch}"),
        "--served-model-name",
        arch,
        "--skip-tokenizer-init",
        "--dtype",
        "float32",
        "--max-model-len",
        "256",
        "--max-num-seqs",
        "4",
        "--max-num-batched-tokens",
        str(MAX_BATCHED_TOKENS),
        "--enable-prompt-tokens-details",
        "--additional-config",
        '{"tt": {"kv_cache_tokens": 4096}}',
    ) as server:
        yield arch, server, expected


def complete_concurrently(server: RunningServer, arch: str, prompts: list[list[int]]) -> list[dict]:
    """All prompts at once (the server batches them); the responses in prompt order."""

    def complete(prompt: list[int]) -> dict:
        body = {
            "model": arch,
            "prompt": prompt,
            "max_tokens": MAX_TOKENS,
            "temperature": 0.0,
            "ignore_eos": True,
            "return_token_ids": True,
        }
        response = requests.post(f"{server.base_url}/v1/completions", json=body, timeout=300)
        assert response.status_code == 200, response.text
        return response.json()

    with ThreadPoolExecutor(len(prompts)) as pool:
        return list(pool.map(complete, prompts))


def test_long_prompts_and_cached_prefix_match_transformers(served):
    arch, server, expected = served
    first = complete_concurrently(server, arch, FIRST)
    assert [r["choices"][0]["token_ids"] for r in first] == expected[: len(FIRST)]
    second = complete_concurrently(server, arch, SECOND)
    assert [r["choices"][0]["token_ids"] for r in second] == expected[len(FIRST) :]
    usage = second[0]["usage"]
    assert usage["prompt_tokens_details"]["cached_tokens"] >= PREFIX_TOKENS, usage
