"""The host Gemma 3 with images (src/tt_vllm_plugin/models/host/gemma3_mm/) against transformers'
Gemma3ForConditionalGeneration with the same random weights: greedy tokens identical, on both host
attention backends (vLLM's CPU kernels and plain torch).

The images are real ones through transformers' Gemma 3 image processor (its PIL variant: torchvision is
not installed here), pan-and-scan on, so one image becomes the original plus crops, each its own block of
image tokens. The prompts' token ids are laid out as transformers' Gemma3Processor expands an image
(``boi``, ``mm_tokens_per_image`` image tokens, ``eoi`` per crop): the tiny checkpoint has no tokenizer.
transformers is run without a KV cache (the whole sequence every step) with ``token_type_ids`` marking the
image tokens, which is what turns on its bidirectional attention inside each image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoConfig, Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessorPil

from tests.contract.helpers import BlockPool, blocks_for, padded_tokens, page_table
from tt_vllm_plugin.device.host import HostDevice
from tt_vllm_plugin.models.host.attention import KernelAttention, TorchAttention
from tt_vllm_plugin.models.registry import DeviceChoice, load_model_class

VOCAB, BOI, EOI, IMAGE = 300, 290, 291, 292
TOKENS_PER_IMAGE = 4
WINDOW = 12  # shorter than the prompts, so sliding layers cut through image blocks
BLOCK_SIZE = 16  # the kernels take multiples of 16
MAX_SEQ_LEN = 128
STEPS = 6
CPU_FP32 = HostDevice(torch.device("cpu"), torch.float32)


def tiny_config() -> Gemma3Config:
    return Gemma3Config(
        text_config=dict(
            vocab_size=VOCAB,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=32,
            sliding_window=WINDOW,
            layer_types=["sliding_attention", "full_attention", "sliding_attention"],
            query_pre_attn_scalar=24,
            max_position_embeddings=MAX_SEQ_LEN,
            rope_parameters={
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000000.0},
            },
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=28,
            patch_size=7,
        ),
        mm_tokens_per_image=TOKENS_PER_IMAGE,
        boi_token_index=BOI,
        eoi_token_index=EOI,
        image_token_index=IMAGE,
    )


@dataclass
class Checkpoint:
    folder: Path
    reference: Gemma3ForConditionalGeneration


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Checkpoint:
    torch.manual_seed(0)
    model = Gemma3ForConditionalGeneration(tiny_config()).eval()
    with torch.no_grad():  # random norm weights, so the (1 + w) norms and the projector's norm count
        for name, param in model.named_parameters():
            if param.dim() == 1 and "norm" in name:
                param.normal_(0.0, 0.3)
    folder = tmp_path_factory.mktemp("gemma3-mm")
    model.save_pretrained(folder)
    return Checkpoint(folder, model)


def processed_images(sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
    """One pixel_values tensor per image, (crops + 1, 3, 28, 28), as vLLM's Gemma 3 items hold them."""
    processor = Gemma3ImageProcessorPil(
        size={"height": 28, "width": 28},
        do_pan_and_scan=True,
        pan_and_scan_min_crop_size=10,
        pan_and_scan_max_num_crops=3,
        pan_and_scan_min_ratio_to_activate=1.2,
    )
    rng = np.random.default_rng(1)
    pictures = [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in sizes]
    out = processor(pictures, return_tensors="pt")
    return list(out["pixel_values"].split((torch.as_tensor(out["num_crops"]) + 1).tolist()))


def image_tokens(pixel_values: torch.Tensor) -> list[int]:
    """What Gemma3Processor puts in the prompt for one image: a boi/image/eoi block per crop."""
    return [BOI, *[IMAGE] * TOKENS_PER_IMAGE, EOI] * pixel_values.shape[0]


def text(n: int, seed: int) -> list[int]:
    return torch.randint(1, BOI, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def transformers_greedy(
    reference, prompt: list[int], images: list[torch.Tensor]
) -> tuple[list[int], torch.Tensor]:
    """Greedy tokens and the prompt's last logits."""
    ids, first_logits = list(prompt), None
    pixel_values = torch.cat(images) if images else None
    with torch.inference_mode():
        for _ in range(STEPS):
            input_ids = torch.tensor([ids])
            logits = reference(
                input_ids=input_ids, pixel_values=pixel_values, token_type_ids=(input_ids == IMAGE).long()
            ).logits
            first_logits = logits[0, -1] if first_logits is None else first_logits
            ids.append(int(logits[0, -1].argmax()))
    return ids[len(prompt) :], first_logits


def host_model(checkpoint: Checkpoint, backend: str, monkeypatch):
    if backend == "torch":
        monkeypatch.setenv("TT_VLLM_HOST_ATTENTION", "torch")
    config = AutoConfig.from_pretrained(checkpoint.folder)
    cls = load_model_class("TTGemma3ForConditionalGeneration", DeviceChoice.HOST)
    model = cls.initialize_vllm_model(config, CPU_FP32, max_batch_size=4, max_seq_len=MAX_SEQ_LEN)
    return model


def host_greedy(
    model, prompts: list[list[int]], images: list[list[torch.Tensor] | None]
) -> tuple[list[list[int]], torch.Tensor]:
    """Prefill every prompt in one call (images per row), then decode them together: greedy tokens and
    the prefill's logits."""
    pool = BlockPool(40, seed=2)
    rows = [pool.take(blocks_for(len(p) + STEPS, BLOCK_SIZE)) for p in prompts]
    kv_cache = model.allocate_kv_cache((40, model.num_kv_heads, BLOCK_SIZE, model.head_dim), torch.float32, 3)
    table = page_table(rows, 6)
    tokens = padded_tokens([torch.tensor(p) for p in prompts])
    # The runner passes every field of vLLM's items: Gemma 3's num_patches too (crops + 1 per image).
    num_patches = [None if row is None else [torch.tensor(image.shape[0]) for image in row] for row in images]
    logits = model.prefill_forward(
        tokens, table, kv_cache, [len(p) for p in prompts], pixel_values=images, num_patches=num_patches
    )
    generated = [[int(logits[i, 0].argmax())] for i in range(len(prompts))]
    for _ in range(STEPS - 1):
        step = torch.tensor([[g[-1]] for g in generated])
        start_pos = torch.tensor([len(p) + len(g) - 1 for p, g in zip(prompts, generated, strict=True)])
        out = model.decode_forward(step, start_pos, table, kv_cache)
        for i, g in enumerate(generated):
            g.append(int(out[i, 0].argmax()))
    return generated, logits


@pytest.fixture(scope="module")
def batch():
    """An image first, a text-only row, an image after some text followed by more text, two images."""
    first, later, third, fourth = processed_images([(40, 120), (30, 30), (50, 20), (28, 28)])
    prompts = [
        [BOI - 1, *image_tokens(first), *text(5, 1)],
        text(14, 2),
        [*text(9, 3), *image_tokens(later), *text(6, 4)],
        [*text(3, 5), *image_tokens(third), *text(2, 6), *image_tokens(fourth), *text(4, 7)],
    ]
    images = [[first], None, [later], [third, fourth]]
    assert first.shape[0] > 1  # pan-and-scan made crops: several image blocks in one image
    return prompts, images


@pytest.mark.parametrize("backend", ["vllm", "torch"])
def test_greedy_matches_transformers_with_images_and_text_rows(checkpoint, batch, backend, monkeypatch):
    prompts, images = batch
    model = host_model(checkpoint, backend, monkeypatch)
    model.allocate_kv_cache((1, model.num_kv_heads, BLOCK_SIZE, model.head_dim), torch.float32, 3)
    expected_backend = TorchAttention if backend == "torch" else KernelAttention
    if backend == "vllm" and not isinstance(model.attention, KernelAttention):
        pytest.skip("vLLM's CPU attention kernels are not available here")
    assert isinstance(model.attention, expected_backend)
    got, logits = host_greedy(model, prompts, images)
    for row, (prompt, row_images) in enumerate(zip(prompts, images, strict=True)):
        expected, expected_logits = transformers_greedy(checkpoint.reference, prompt, row_images or [])
        assert got[row] == expected, f"row {row}"
        # Closer than causal attention over the image tokens would come (the test below).
        torch.testing.assert_close(logits[row, 0], expected_logits, atol=1e-4, rtol=1e-4)


def test_bidirectional_attention_inside_images_changes_the_result(checkpoint, batch):
    """The comparison above could not pass with causal attention over image tokens: transformers' own
    logits differ without token_type_ids (causal everywhere)."""
    prompts, images = batch
    input_ids = torch.tensor([prompts[2]])
    with torch.inference_mode():
        both = checkpoint.reference(
            input_ids=input_ids, pixel_values=images[2][0], token_type_ids=(input_ids == IMAGE).long()
        ).logits
        causal = checkpoint.reference(input_ids=input_ids, pixel_values=images[2][0]).logits
    assert not torch.allclose(both[0, -1], causal[0, -1], atol=1e-3)


def test_mismatched_images_are_named(checkpoint, monkeypatch, batch):
    prompts, images = batch
    model = host_model(checkpoint, "torch", monkeypatch)
    kv_cache = model.allocate_kv_cache((8, model.num_kv_heads, BLOCK_SIZE, model.head_dim), torch.float32, 3)
    table = page_table([[1, 2]], 2)
    tokens = padded_tokens([torch.tensor(prompts[2])])
    with pytest.raises(ValueError, match=r"^prefill row 0 has 4 image tokens but no pixel_values\.$"):
        model.prefill_forward(tokens, table, kv_cache, [len(prompts[2])], pixel_values=[None])
    with pytest.raises(ValueError, match=r"^prefill row 0: 4 image tokens but 8 image features"):
        model.prefill_forward(tokens, table, kv_cache, [len(prompts[2])], pixel_values=[[images[2][0]] * 2])
    split = r"^prefill row 0: the image at positions \(10, 14\) is split by the cached prefix of 11 tokens"
    with pytest.raises(ValueError, match=split):
        model.prefill_forward(
            tokens, table, kv_cache, [len(prompts[2])], start_pos=[11], pixel_values=[images[2]]
        )
    raw = [[(images[2][0] * 255).to(torch.uint8)]]
    with pytest.raises(
        ValueError, match=r"^prefill row 0: pixel_values arrived as torch.uint8, not rescaled"
    ):
        model.prefill_forward(tokens, table, kv_cache, [len(prompts[2])], pixel_values=raw)
    text_only = padded_tokens([torch.tensor(prompts[1])])
    with pytest.raises(ValueError, match=r"^prefill row 0 has pixel_values but no image tokens\.$"):
        model.prefill_forward(text_only, table, kv_cache, [len(prompts[1])], pixel_values=[images[2]])


@pytest.mark.parametrize("backend", ["vllm", "torch"])
def test_an_image_after_a_cached_prefix(checkpoint, batch, backend, monkeypatch):
    """The class declares no prefix caching and no chunked prefill, so the runner never sends this; the
    torch path computes it exactly anyway, the kernel path refuses it by name."""
    prompts, images = batch
    prompt = prompts[2]  # 9 text tokens, then the image
    model = host_model(checkpoint, backend, monkeypatch)
    kv_cache = model.allocate_kv_cache((8, model.num_kv_heads, BLOCK_SIZE, model.head_dim), torch.float32, 3)
    if backend == "vllm" and not isinstance(model.attention, KernelAttention):
        pytest.skip("vLLM's CPU attention kernels are not available here")
    table = page_table([[3, 5]], 2)
    tokens = padded_tokens([torch.tensor(prompt)])
    model.prefill_forward(tokens, table, kv_cache, [8], pixel_values=[None])
    if backend == "vllm":
        with pytest.raises(
            NotImplementedError, match=r"^prefill row 0 has image tokens after a cached prefix of 8"
        ):
            model.prefill_forward(
                tokens, table, kv_cache, [len(prompt)], start_pos=[8], pixel_values=[images[2]]
            )
        return
    logits = model.prefill_forward(
        tokens, table, kv_cache, [len(prompt)], start_pos=[8], pixel_values=[images[2]]
    )
    _, expected = transformers_greedy(checkpoint.reference, prompt, images[2])
    torch.testing.assert_close(logits[0, 0], expected, atol=1e-4, rtol=1e-4)
