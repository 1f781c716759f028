"""Images through vllm.LLM with the tt platform: the host Qwen2.5-VL against transformers, greedy.

One engine per prefix-caching setting runs a batch mixing prompts with one and two images and text-only
prompts, then the same prompts again (with prefix caching, cache hits must not mix up images: the same
text with another image gives that image's continuation); more images than the model takes is refused
before the engine. A KV pool too small for the batch preempts image requests, whose recompute must get
their images again. The image tests run where torchvision works (.venv-vision, ``make test-vision``);
elsewhere the image model is refused at start naming torchvision.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.e2e.in_process import in_process_llm
from tests.e2e.tiny_vlm import random_image, save_tiny_qwen2_5_vl
from tests.e2e.vision_env import requires_vision_env
from tests.e2e.vlm_reference import transformers_vlm_greedy

pytestmark = pytest.mark.engine

IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"
MAX_TOKENS = 8
LONG_MAX_TOKENS = 48  # long enough for the preemption test's requests to outgrow its KV pool


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
def folder(tmp_path_factory) -> str:  # needs torchvision (Qwen's processor)
    return str(save_tiny_qwen2_5_vl(Path(tmp_path_factory.mktemp("qwen2_5_vl"))))


@pytest.fixture(scope="module")
def expected(folder):  # needs torchvision (Qwen's processor)
    return transformers_vlm_greedy(folder, _prompts(), MAX_TOKENS)


def _validation_error() -> type[Exception]:
    """What vLLM raises for a refused prompt (0.32+: VLLMValidationError; before: ValueError)."""
    import vllm.exceptions

    return getattr(vllm.exceptions, "VLLMValidationError", ValueError)


def _generate(llm, prompts, max_tokens: int = MAX_TOKENS):
    from vllm import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)
    requests = [
        {"prompt": text, **({"multi_modal_data": {"image": images}} if images else {})}
        for text, images in prompts
    ]
    return [out.outputs[0].token_ids for out in llm.generate(requests, params, use_tqdm=False)]


@requires_vision_env
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


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed")
def test_without_torchvision_the_image_model_is_refused_naming_it(tmp_path, monkeypatch):
    """Where vLLM's Qwen2-VL processor cannot import (no torchvision), serving the model is refused before
    the engine starts, saying what to install; text models are served as usual (every other e2e test)."""
    import torch
    from vllm.engine.arg_utils import EngineArgs

    monkeypatch.setenv("TT_VLLM_DEVICE", "host")
    folder = str(save_tiny_qwen2_5_vl(tmp_path / "qwen2_5_vl", processor=False))
    with pytest.raises(Exception, match="torchvision") as refused:
        EngineArgs(model=folder, dtype="float32", max_model_len=256).create_engine_config()
    assert (
        "Not supported on the tt platform: TTQwen2_5_VLForConditionalGeneration takes images, and vLLM's "
        "Qwen2_5_VLForConditionalGeneration, which holds its image processor, does not import here "
        "(ModuleNotFoundError: No module named 'torchvision'). vLLM's image processors need torchvision: "
        f"install the torchvision release built for this torch ({torch.__version__}); "
        "see 'Images' in docs/models/index.md."
    ) in str(refused.value)


@requires_vision_env
def test_preempted_image_requests_recompute_with_their_images(folder):
    """A KV pool too small for the batch: vLLM preempts and recomputes; the recomputed prefills get their
    images again (the request state keeps its ``mm_features``) and the output is unchanged."""
    block_size = 16
    with in_process_llm(
        model=folder,
        dtype="float32",
        max_model_len=128,
        max_num_seqs=4,
        max_num_batched_tokens=128,
        block_size=block_size,
        enable_prefix_caching=False,
        disable_log_stats=False,
        # 9 blocks (one is vLLM's null block): the five requests need about 17 at the end, so some wait.
        additional_config={"tt": {"kv_cache_tokens": 9 * block_size}},
    ) as llm:
        got = [list(t) for t in _generate(llm, _prompts(), LONG_MAX_TOKENS)]
        preemptions = sum(m.value for m in llm.get_metrics() if m.name == "vllm:num_preemptions")
    assert preemptions > 0, "the pool was meant to be too small: no preemption happened"
    assert got == transformers_vlm_greedy(folder, _prompts(), LONG_MAX_TOKENS)
