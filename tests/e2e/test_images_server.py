"""Images over vLLM's OpenAI server with the tt platform: the host Qwen2.5-VL against transformers, greedy.

One server for the module (its engine core in its own process, as in production). Chat requests carry
images as ``image_url`` data URIs (PNG, lossless, so the server decodes the very pixels transformers
gets); image and text-only requests run concurrently and each one's prompt and output token ids equal
transformers'. Refusals (more images than the model takes, image tokens beyond max_model_len) are 400s
naming the limit, each followed by a request that succeeds.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.e2e.image_chat import image_model_server, post_chat, token_ids
from tests.e2e.server import RunningServer
from tests.e2e.tiny_vlm import random_image, save_tiny_qwen2_5_vl
from tests.e2e.vision_env import requires_vision_env
from tests.e2e.vlm_reference import transformers_chat_greedy

pytestmark = [pytest.mark.server, requires_vision_env]

SERVED_NAME = "tiny-qwen2.5-vl"
MAX_MODEL_LEN = 256
MAX_TOKENS = 8
BIG = (224, 224)  # 16 x 16 patches: 64 image tokens, the processor's largest (tiny_vlm.py)


def _chats() -> list[tuple[str, list]]:
    return [
        ("Describe it.", [random_image(1)]),
        ("Just text here.", []),
        ("Compare the two.", [random_image(2), random_image(3, size=(56, 84))]),
        ("Another text prompt, somewhat longer than the other.", []),
        ("Describe it.", [random_image(2)]),  # the first chat's text with another image
    ]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> str:
    return str(save_tiny_qwen2_5_vl(Path(tmp_path_factory.mktemp("qwen2_5_vl_server"))))


@pytest.fixture(scope="module")
def expected(folder) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, greedy output ids) per chat: the chat template and Qwen's processor, then transformers."""
    return transformers_chat_greedy(folder, _chats(), MAX_TOKENS)


@pytest.fixture(scope="module")
def server(folder, tmp_path_factory) -> RunningServer:
    log_dir = tmp_path_factory.mktemp("images_server")
    with image_model_server(folder, log_dir, SERVED_NAME, MAX_MODEL_LEN, kv_cache_tokens=4096) as running:
        yield running


def _chat(server: RunningServer, text: str, images: list) -> requests.Response:
    return post_chat(server.base_url, SERVED_NAME, text, images, MAX_TOKENS)


def test_engine_core_resolves_the_multimodal_view(server):
    # The model runner logs it, and the runner lives only in the engine core, a process of its own.
    log = server.log()
    engine_pids = set(re.findall(r"\(EngineCore(?:_DP0)? pid=(\d+)\)", log))
    assert engine_pids and str(server.process.pid) not in engine_pids
    assert (
        "[tt_vllm_plugin.worker.model_runner] vLLM resolves TTQwen2_5_VLForConditionalGeneration to the "
        "multimodal view of its vllm.model_executor.models.qwen2_5_vl.Qwen2_5_VLForConditionalGeneration"
    ) in log


def test_concurrent_image_and_text_chats_match_transformers(server, expected):
    with ThreadPoolExecutor(max_workers=len(expected)) as pool:
        responses = list(pool.map(lambda chat: _chat(server, *chat), _chats()))
    assert [token_ids(response) for response in responses] == expected


def _refused(response: requests.Response) -> str:
    assert response.status_code == 400, response.text
    return response.json()["error"]["message"]


def test_more_images_than_the_model_takes_is_a_400_then_serving_goes_on(server, expected):
    message = _refused(_chat(server, "Five.", [random_image(seed) for seed in range(5)]))
    assert "At most 4 image(s) may be provided in one prompt." in message
    assert token_ids(_chat(server, *_chats()[0])) == expected[0]


def test_image_tokens_beyond_max_model_len_is_a_400_then_serving_goes_on(server, expected):
    images = [random_image(seed, size=BIG) for seed in range(4)]  # 4 x 64 image tokens + 69 of text
    message = _refused(_chat(server, "Four large ones.", images))
    assert message == f"Input length (325) exceeds model's maximum context length ({MAX_MODEL_LEN})."
    assert token_ids(_chat(server, *_chats()[2])) == expected[2]
