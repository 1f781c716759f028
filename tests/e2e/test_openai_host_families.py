"""The mixture-of-experts host families through vLLM's OpenAI server, against transformers.

One server per family on its tiny random checkpoint (no tokenizer: token ids in, token ids out through
``return_token_ids``), with the engine test's prompts (tests/e2e/test_engine_architectures.py): sent
concurrently so the engine batches them, one longer than every sliding window and prefilled in 48-token
chunks, then follow-ups that hit the prefix cache (``cached_tokens`` in the usage).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e.random_models import save_random_model
from tests.e2e.reference import transformers_greedy
from tests.e2e.server import RunningServer, host_plugin_server
from tests.e2e.test_engine_architectures import BLOCK_SIZE, CHUNK, FOLLOW_UPS, MAX_TOKENS, PROMPTS

pytestmark = pytest.mark.server

FAMILIES = ["GptOssForCausalLM", "Qwen3MoeForCausalLM"]
NAME = "random"


@pytest.fixture(scope="module", params=FAMILIES)
def family(request, tmp_path_factory) -> Iterator[tuple[RunningServer, list[list[int]]]]:
    folder = str(save_random_model(request.param, tmp_path_factory.mktemp(request.param)))
    expected = transformers_greedy(folder, PROMPTS + FOLLOW_UPS, MAX_TOKENS)
    with host_plugin_server(
        folder,
        tmp_path_factory.mktemp(f"{request.param}_server"),
        "--served-model-name",
        NAME,
        "--skip-tokenizer-init",
        "--dtype",
        "float32",
        "--max-model-len",
        "256",
        "--max-num-seqs",
        "4",
        "--block-size",
        str(BLOCK_SIZE),
        "--max-num-batched-tokens",
        str(CHUNK),
        "--enable-prefix-caching",
        "--enable-prompt-tokens-details",
        "--additional-config",
        '{"tt": {"kv_cache_tokens": 4096}}',
    ) as server:
        yield server, expected


def complete(server: RunningServer, prompt: list[int]) -> dict:
    body = {
        "model": NAME,
        "prompt": prompt,
        "max_tokens": MAX_TOKENS,
        "temperature": 0.0,
        "ignore_eos": True,
        "return_token_ids": True,
    }
    response = requests.post(f"{server.base_url}/v1/completions", json=body, timeout=300)
    assert response.status_code == 200, response.text
    return response.json()


def complete_concurrently(server: RunningServer, prompts: list[list[int]]) -> list[dict]:
    with ThreadPoolExecutor(len(prompts)) as pool:
        return list(pool.map(lambda prompt: complete(server, prompt), prompts))


def test_concurrent_chunked_and_prefix_cached_completions_match_transformers(family):
    server, expected = family
    first = complete_concurrently(server, PROMPTS)
    assert [r["choices"][0]["token_ids"] for r in first] == expected[: len(PROMPTS)]
    second = complete_concurrently(server, FOLLOW_UPS)
    assert [r["choices"][0]["token_ids"] for r in second] == expected[len(PROMPTS) :]
    cached = [r["usage"]["prompt_tokens_details"]["cached_tokens"] for r in second]
    assert cached[0] == BLOCK_SIZE * (131 // BLOCK_SIZE) and cached[1] >= BLOCK_SIZE * (150 // BLOCK_SIZE)
    assert "Platform tt (tt-vllm-plugin) active on the host device" in server.log()
