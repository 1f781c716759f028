"""KV pressure over HTTP: concurrent greedy requests on a server whose KV pool cannot hold them all.

The pool has 12 blocks of 16 tokens; six requests need up to 4 blocks each by their last token, so vLLM's
scheduler must preempt (and recompute) some of them. Every request must still complete, token-identical to
transformers, and /metrics must show the preemptions. tests/e2e/test_engine_preemption.py checks the same
at engine level, without the OpenAI server and without concurrent clients.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e.reference import transformers_greedy
from tests.e2e.server import host_plugin_server, metric_total

pytestmark = pytest.mark.server

SERVED_NAME = "smollm2-135m-instruct"
BLOCK_SIZE = 16
KV_BLOCKS = 12
MAX_MODEL_LEN = 128  # the pool (192 tokens) still holds one full-length request
MAX_TOKENS = 40
PROMPTS = [
    "Tell me a story about a dragon",
    "List three prime numbers:",
    "The quick brown fox",
    "Explain photosynthesis in one sentence.",
    "Once upon a time",
    "What is the tallest mountain?",
]


@pytest.fixture(scope="module")
def small_pool_server(default_model_path, tmp_path_factory):
    with host_plugin_server(
        default_model_path,
        tmp_path_factory.mktemp("small_pool_server"),
        "--served-model-name",
        SERVED_NAME,
        "--max-model-len",
        str(MAX_MODEL_LEN),
        "--max-num-seqs",
        str(len(PROMPTS)),
        "--block-size",
        str(BLOCK_SIZE),
        "--additional-config",
        f'{{"tt": {{"kv_cache_tokens": {KV_BLOCKS * BLOCK_SIZE}}}}}',
    ) as server:
        yield server


def greedy_token_ids(base_url: str, prompt_ids: list[int]) -> list[int]:
    body = {
        "model": SERVED_NAME,
        "prompt": prompt_ids,
        "max_tokens": MAX_TOKENS,
        "temperature": 0.0,
        "ignore_eos": True,
        "return_token_ids": True,
    }
    response = requests.post(f"{base_url}/v1/completions", json=body, timeout=600)
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "length"
    return choice["token_ids"]


def test_concurrent_requests_over_a_too_small_pool_preempt_and_match_transformers(
    small_pool_server, default_model_path
):
    from transformers import AutoTokenizer

    url = small_pool_server.base_url
    tokenizer = AutoTokenizer.from_pretrained(default_model_path)
    prompt_ids = [tokenizer.encode(p) for p in PROMPTS]
    assert f"KV cache: {KV_BLOCKS} blocks of {BLOCK_SIZE} tokens" in small_pool_server.log()

    preemptions_before = metric_total(url, "vllm:num_preemptions_total")
    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        got = list(pool.map(lambda ids: greedy_token_ids(url, ids), prompt_ids))
    preemptions = metric_total(url, "vllm:num_preemptions_total") - preemptions_before

    print(f"preemptions during the concurrent batch: {preemptions:.0f}")
    assert preemptions > 0, "the pool was meant to be too small: no preemption happened"
    assert got == transformers_greedy(default_model_path, prompt_ids, MAX_TOKENS)
    assert requests.get(f"{url}/health", timeout=10).status_code == 200
