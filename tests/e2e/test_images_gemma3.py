"""Images with the host Gemma 3 (``Gemma3ForConditionalGeneration``) against transformers, greedy: through
vllm.LLM with pan-and-scan turned on as a user does (``mm_processor_kwargs``, the same on transformers'
processor), and through vLLM's OpenAI server with the checkpoint's processor defaults (no pan-and-scan),
images as ``image_url`` data URIs. Image prompts run in one batch with text-only ones; the class declares
no prefix caching and no chunked prefill, so the platform turns both off. Image tokens past
max_model_len are a 400 naming it, then serving goes on. The image tests run where
torchvision works (.venv-vision, ``make test-vision``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.image_chat import chat_messages, image_model_server, post_chat, token_ids
from tests.e2e.in_process import in_process_llm
from tests.e2e.server import RunningServer
from tests.e2e.tiny_gemma3 import PAN_AND_SCAN, save_tiny_gemma3
from tests.e2e.tiny_vlm import random_image
from tests.e2e.vision_env import requires_vision_env
from tests.e2e.vlm_reference import transformers_chat_greedy, transformers_vlm_greedy

pytestmark = requires_vision_env

ARCHITECTURE = "Gemma3ForConditionalGeneration"
IMAGE = "<start_of_image>"
SERVED_NAME = "tiny-gemma3"
MAX_MODEL_LEN = 256
MAX_TOKENS = 8


def _turn(text: str) -> str:
    return f"<bos><start_of_turn>user\n{text}<end_of_turn>\n<start_of_turn>model\n"


def _prompts() -> list[tuple[str, list]]:
    """A wide image (pan-and-scan crops it in three), text only, two images, the first text with a square
    image (no crops), more text."""
    wide, square, tall = random_image(1, (60, 20)), random_image(2, (28, 28)), random_image(3, (20, 44))
    return [
        (_turn(f"{IMAGE}Describe it."), [wide]),
        (_turn("Just text here."), []),
        (_turn(f"Two: {IMAGE} and {IMAGE} compared."), [tall, square]),
        (_turn(f"{IMAGE}Describe it."), [square]),
        (_turn("Another text prompt, somewhat longer than the other."), []),
    ]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> str:
    return str(save_tiny_gemma3(Path(tmp_path_factory.mktemp("gemma3_mm"))))


@pytest.mark.engine
def test_llm_with_pan_and_scan_matches_transformers(folder):
    from vllm import SamplingParams

    expected = transformers_vlm_greedy(folder, _prompts(), MAX_TOKENS, ARCHITECTURE, PAN_AND_SCAN)
    params = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True)
    requests_ = [
        {"prompt": text, **({"multi_modal_data": {"image": images}} if images else {})}
        for text, images in _prompts()
    ]
    with in_process_llm(
        model=folder,
        dtype="float32",
        max_model_len=MAX_MODEL_LEN,
        max_num_seqs=4,
        mm_processor_kwargs=PAN_AND_SCAN,
        kv_cache_memory_bytes=64 * 2**20,
    ) as llm:
        outputs = llm.generate(requests_, params, use_tqdm=False)
        # The wide image became the original and three crops: four image blocks in its prompt.
        assert outputs[0].prompt_token_ids.count(llm.get_tokenizer().convert_tokens_to_ids(IMAGE)) == 4
        assert [list(out.outputs[0].token_ids) for out in outputs] == expected


@pytest.fixture(scope="module")
def server(folder, tmp_path_factory) -> RunningServer:
    log_dir = tmp_path_factory.mktemp("gemma3_server")
    with image_model_server(folder, log_dir, SERVED_NAME, MAX_MODEL_LEN, kv_cache_tokens=2048) as running:
        yield running


def _chats() -> list[tuple[str, list]]:
    return [
        ("Describe it.", [random_image(1, (60, 20))]),
        ("Just text here.", []),
        ("Compare the two.", [random_image(2), random_image(3, (20, 44))]),
        ("Describe it.", [random_image(4)]),
    ]


@pytest.mark.server
def test_server_image_url_chats_match_transformers(server, folder):
    expected = transformers_chat_greedy(folder, _chats(), MAX_TOKENS, ARCHITECTURE)
    with ThreadPoolExecutor(max_workers=len(expected)) as pool:
        responses = list(
            pool.map(lambda chat: post_chat(server.base_url, SERVED_NAME, *chat, MAX_TOKENS), _chats())
        )
    assert [token_ids(response) for response in responses] == expected


@pytest.mark.server
def test_image_tokens_beyond_max_model_len_is_a_400_then_serving_goes_on(server, folder):
    """Gemma 3 sets no per-prompt image limit; 40 images' tokens (6 each with their newlines) pass
    max_model_len and are refused naming it, before the engine; the next chat is served as usual."""
    from transformers import AutoProcessor

    images = [random_image(seed, (28, 28)) for seed in range(40)]
    processor = AutoProcessor.from_pretrained(folder)
    prompt = processor.tokenizer.apply_chat_template(
        chat_messages("Many.", images), tokenize=False, add_generation_prompt=True
    )
    length = len(processor(text=[prompt], images=images)["input_ids"][0])
    refused = post_chat(server.base_url, SERVED_NAME, "Many.", images, MAX_TOKENS)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["message"] == (
        f"Input length ({length}) exceeds model's maximum context length ({MAX_MODEL_LEN})."
    )
    expected = transformers_chat_greedy(folder, _chats()[:1], MAX_TOKENS, ARCHITECTURE)
    assert [token_ids(post_chat(server.base_url, SERVED_NAME, *_chats()[0], MAX_TOKENS))] == expected
