"""The OpenAI-compatible server of a Tenstorrent-built vLLM (0.25.1, 0.26.0, 0.34.0) with the tt platform
on the host device (a child process), through the openai client: greedy tokens identical to
transformers."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.e2e.server import RunningServer, host_plugin_server
from tests.tenstorrent_vllm.conftest import MAX_TOKENS, PROMPTS

pytestmark = pytest.mark.server

SERVED_NAME = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def server(default_model_path, tmp_path_factory) -> Iterator[RunningServer]:
    with host_plugin_server(
        default_model_path,
        tmp_path_factory.mktemp("tenstorrent_vllm_server"),
        "--served-model-name",
        SERVED_NAME,
        "--max-model-len",
        "512",
        "--max-num-seqs",
        "8",
        "--additional-config",
        '{"tt": {"kv_cache_tokens": 8192}}',
    ) as running:
        yield running


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused")


def test_log_names_platform_device_and_vllm_release(server, vllm_release):
    log = server.log()
    assert f"Platform tt (tt-vllm-plugin) active on the host device; vLLM {vllm_release}+empty" in log
    assert "tt worker on the host (cpu, float32) device" in log
    assert "vllm._C is absent" in log


def test_completions_are_token_identical_to_transformers(client, prompt_ids, reference):
    for prompt, ids, expected in zip(PROMPTS, prompt_ids, reference, strict=True):
        response = client.completions.create(
            model=SERVED_NAME,
            prompt=ids,
            max_tokens=MAX_TOKENS,
            temperature=0.0,
            extra_body={"ignore_eos": True, "return_token_ids": True},
        )
        assert response.choices[0].model_extra["token_ids"] == expected, f"prompt {prompt!r}"


def test_chat_completion(client):
    response = client.chat.completions.create(
        model=SERVED_NAME,
        messages=[{"role": "user", "content": "What is 2+2?"}],
        max_tokens=8,
        temperature=0.0,
    )
    assert response.choices[0].message.content
    assert response.usage.completion_tokens <= 8
