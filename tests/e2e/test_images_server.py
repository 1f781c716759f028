"""Images over vLLM's OpenAI server with the tt platform: the host Qwen2.5-VL against transformers, greedy.

One server for the module (its engine core in its own process, as in production). Chat requests carry
images as ``image_url`` data URIs (PNG, lossless, so the server decodes the very pixels transformers
gets); image and text-only requests run concurrently and each one's prompt and output token ids equal
transformers'. Refusals (more images than the model takes, image tokens beyond max_model_len) are 400s
naming the limit, each followed by a request that succeeds.
"""

from __future__ import annotations

import base64
import io
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.e2e.server import RunningServer, host_plugin_server
from tests.e2e.tiny_vlm import random_image, save_tiny_qwen2_5_vl
from tests.e2e.vision_env import requires_vision_env
from tests.e2e.vlm_reference import transformers_vlm_greedy

pytestmark = [pytest.mark.server, requires_vision_env]

SERVED_NAME = "tiny-qwen2.5-vl"
MAX_MODEL_LEN = 256
MAX_TOKENS = 8
BIG = (224, 224)  # 16 x 16 patches: 64 image tokens, the processor's largest (tiny_vlm.py)


def _data_uri(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _message(text: str, images: list) -> list[dict]:
    content = [{"type": "image_url", "image_url": {"url": _data_uri(image)}} for image in images]
    return [{"role": "user", "content": [*content, {"type": "text", "text": text}]}]


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
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(folder)
    prompts = []
    for text, images in _chats():
        rendered = processor.tokenizer.apply_chat_template(
            _message(text, images), tokenize=False, add_generation_prompt=True
        )
        prompts.append((rendered, images))
    outputs = transformers_vlm_greedy(folder, prompts, MAX_TOKENS)
    prompt_ids = [processor(text=[text], images=images or None)["input_ids"][0] for text, images in prompts]
    return list(zip(prompt_ids, outputs, strict=True))


@pytest.fixture(scope="module")
def server(folder, tmp_path_factory) -> RunningServer:
    with host_plugin_server(
        folder,
        tmp_path_factory.mktemp("images_server"),
        "--served-model-name",
        SERVED_NAME,
        "--dtype",
        "float32",
        "--max-model-len",
        str(MAX_MODEL_LEN),
        "--max-num-seqs",
        "4",
        "--additional-config",
        json.dumps({"tt": {"kv_cache_tokens": 4096}}),
    ) as running:
        yield running


def _chat(server: RunningServer, text: str, images: list) -> requests.Response:
    body = {
        "model": SERVED_NAME,
        "messages": _message(text, images),
        "max_tokens": MAX_TOKENS,
        "temperature": 0.0,
        "ignore_eos": True,
        "return_token_ids": True,
    }
    return requests.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=300)


def _ids(response: requests.Response) -> tuple[list[int], list[int]]:
    assert response.status_code == 200, response.text
    body = response.json()
    return body["prompt_token_ids"], body["choices"][0]["token_ids"]


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
    assert [_ids(response) for response in responses] == expected


def _refused(response: requests.Response) -> str:
    assert response.status_code == 400, response.text
    return response.json()["error"]["message"]


def test_more_images_than_the_model_takes_is_a_400_then_serving_goes_on(server, expected):
    message = _refused(_chat(server, "Five.", [random_image(seed) for seed in range(5)]))
    assert "At most 4 image(s) may be provided in one prompt." in message
    assert _ids(_chat(server, *_chats()[0])) == expected[0]


def test_image_tokens_beyond_max_model_len_is_a_400_then_serving_goes_on(server, expected):
    images = [random_image(seed, size=BIG) for seed in range(4)]  # 4 x 64 image tokens + 69 of text
    message = _refused(_chat(server, "Four large ones.", images))
    assert message == f"Input length (325) exceeds model's maximum context length ({MAX_MODEL_LEN})."
    assert _ids(_chat(server, *_chats()[2])) == expected[2]
