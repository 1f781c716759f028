"""Images through vllm.LLM with the tt platform: the host Qwen2.5-VL against transformers, greedy.

One engine (prefix caching on) runs a batch mixing prompts with one and two images and text-only
prompts; the same prompts again (a prefix cache hit must not mix up images: the same text with another
image gives that image's continuation); more images than the model takes is refused before the engine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.in_process import in_process_llm
from tests.e2e.tiny_vlm import random_image, save_tiny_qwen2_5_vl
from tests.e2e.vlm_reference import transformers_vlm_greedy

pytestmark = pytest.mark.engine

IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"
MAX_TOKENS = 8


def _prompts():
    a, b, c = random_image(1), random_image(2), random_image(3, size=(56, 84))
    return [
        (f"<|im_start|>user\n{IMAGE}Describe it.<|im_end|>\n", [a]),
        ("<|im_start|>user\nJust text here.<|im_end|>\n", []),
        (f"<|im_start|>user\nTwo: {IMAGE} and {IMAGE} compared.<|im_end|>\n", [b, c]),
        (f"<|im_start|>user\n{IMAGE}Describe it.<|im_end|>\n", [b]),  # the first prompt's text, image b
        ("<|im_start|>user\nAnother text prompt, somewhat longer than the other.<|im_end|>\n", []),
    ]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> str:
    return str(save_tiny_qwen2_5_vl(Path(tmp_path_factory.mktemp("qwen2_5_vl"))))


@pytest.fixture(scope="module")
def expected(folder):
    return transformers_vlm_greedy(folder, _prompts(), MAX_TOKENS)


def _validation_error() -> type[Exception]:
    """What vLLM raises for a refused prompt (0.32+: VLLMValidationError; before: ValueError)."""
    import vllm.exceptions

    return getattr(vllm.exceptions, "VLLMValidationError", ValueError)


def _generate(llm, prompts):
    from vllm import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True)
    requests = [
        {"prompt": text, **({"multi_modal_data": {"image": images}} if images else {})}
        for text, images in prompts
    ]
    return [out.outputs[0].token_ids for out in llm.generate(requests, params, use_tqdm=False)]


@pytest.mark.parametrize("prefix_caching", [True, False])
def test_images_token_identical_to_transformers(folder, expected, prefix_caching):
    with in_process_llm(
        model=folder,
        dtype="float32",
        max_model_len=256,
        max_num_seqs=4,
        max_num_batched_tokens=96,
        enable_prefix_caching=prefix_caching,
        kv_cache_memory_bytes=64 * 2**20,
    ) as llm:
        prompts = _prompts()
        assert [list(t) for t in _generate(llm, prompts)] == expected
        # Again: with prefix caching the prompts' blocks now come from the cache.
        assert [list(t) for t in _generate(llm, prompts)] == expected
        # The model takes at most four images per prompt: five are refused, naming the limit.
        with pytest.raises(_validation_error(), match=r"At most 4 image\(s\) may be provided in one prompt"):
            _generate(llm, [(IMAGE * 5, [random_image(i) for i in range(5)])])
        assert [list(t) for t in _generate(llm, prompts[:1])] == expected[:1]
