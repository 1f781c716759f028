"""tt-metal's image generator classes through the adapter (src/tt_vllm_plugin/models/tt_metal/images.py),
against TEST DOUBLES with their real signatures (tests/contract/tt_metal_image_doubles.py, sources there).

The image features are what vLLM's processing holds for a prompt: real images through transformers' image
processors (the PIL ones: torchvision is not installed here), cut into per-image items by vLLM's own
``MultiModalKwargsItems.from_hf_inputs`` with each architecture's field config as vLLM 0.32's processor
declares it (``gemma3_mm.py``, ``qwen2_vl.py``, ``qwen3_vl.py``, ``mistral3.py`` ``_get_mm_fields_config``,
and Mistral 3's ``_postprocess_hf_mm_data``), then gathered per prefill row the way Tenstorrent's runner does
(vllm-tt-plugin ``_gather_multi_modal_inputs``: ``item[field].data`` per image, ``None`` per text row).
Each test asserts the generator's model receives, row by row, exactly those tensors.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    BatchFeature,
    Gemma3ImageProcessorPil,
    PixtralImageProcessorPil,
    Qwen2VLImageProcessorPil,
)
from vllm.multimodal.inputs import (
    MultiModalFeatureSpec,
    MultiModalFieldConfig,
    MultiModalKwargsItems,
    PlaceholderRange,
)

from tests.contract import tt_metal_image_doubles as image_doubles
from tests.e2e.vision_env import requires_vision_env
from tt_vllm_plugin.models.contract import takes_images
from tt_vllm_plugin.models.tt_metal.adapter import adapter_for
from tt_vllm_plugin.worker.multimodal_inputs import prefill_image_kwargs

MAX_BATCH = 4
SIZES = [(40, 120), (30, 30), (50, 20)]  # (height, width): wide, square, tall


def pictures(sizes: list[tuple[int, int]], seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in sizes]


def gemma3_items(images: list[Image.Image]) -> list[Any]:
    """Gemma 3 with pan-and-scan, so images differ in their number of crops."""
    processor = Gemma3ImageProcessorPil(
        size={"height": 28, "width": 28},
        do_pan_and_scan=True,
        pan_and_scan_min_crop_size=10,
        pan_and_scan_max_num_crops=4,
        pan_and_scan_min_ratio_to_activate=1.2,
    )
    out = processor(images, return_tensors="pt")
    num_patches = torch.as_tensor(out["num_crops"]) + 1  # vLLM's Gemma3MultiModalProcessor
    hf = BatchFeature({"pixel_values": out["pixel_values"], "num_patches": num_patches})
    config = {
        "pixel_values": MultiModalFieldConfig.flat_from_sizes("image", num_patches),
        "num_patches": MultiModalFieldConfig.batched("image", keep_on_cpu=True),
    }
    return list(MultiModalKwargsItems.from_hf_inputs(hf, config)["image"])


def qwen_vl_items(processor: Any, images: list[Image.Image]) -> list[Any]:
    """The per-image items vLLM's Qwen-VL processors cut (``_create_qwen2vl_field_factory``: each image's
    patches by its grid, one grid per image), from ``processor``'s output."""
    out = processor(images, return_tensors="pt")
    grid = out["image_grid_thw"]
    hf = BatchFeature({"pixel_values": out["pixel_values"], "image_grid_thw": grid})
    config = {
        "pixel_values": MultiModalFieldConfig.flat_from_sizes("image", grid.prod(-1)),
        "image_grid_thw": MultiModalFieldConfig.batched("image", keep_on_cpu=True),
    }
    return list(MultiModalKwargsItems.from_hf_inputs(hf, config)["image"])


def qwen25_vl_items(images: list[Image.Image]) -> list[Any]:
    return qwen_vl_items(Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16), images)


# Qwen3-VL's image processor settings (16-pixel patches, 2 x 2 merge, mean and std 0.5, as its
# checkpoints' preprocessor_config.json), for either of transformers' Qwen2-VL image processors.
QWEN3_VL_PROCESSOR_SETTINGS: dict[str, Any] = {
    "size": {"shortest_edge": 32 * 32 * 4, "longest_edge": 32 * 32 * 16},
    "patch_size": 16,
    "merge_size": 2,
    "temporal_patch_size": 2,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
}


def qwen3_vl_items(images: list[Image.Image]) -> list[Any]:
    """Items cut as for Qwen3-VL: vLLM 0.32's Qwen3VLMultiModalProcessor._get_mm_fields_config is
    Qwen2-VL's field factory (``_create_qwen2vl_field_factory``)."""
    return qwen_vl_items(Qwen2VLImageProcessorPil(**QWEN3_VL_PROCESSOR_SETTINGS), images)


def mistral3_items(images: list[Image.Image]) -> list[Any]:
    processor = PixtralImageProcessorPil(size={"longest_edge": 64}, patch_size=16)
    out = processor(images, return_tensors="pt")
    # vLLM's Mistral3MultiModalProcessor._postprocess_hf_mm_data: each image cut to its own size.
    cut = [p[:, :h, :w] for p, (h, w) in zip(out["pixel_values"], out["image_sizes"].tolist(), strict=True)]
    hf = BatchFeature({"pixel_values": cut})
    config = {"pixel_values": MultiModalFieldConfig.batched("image")}
    return list(MultiModalKwargsItems.from_hf_inputs(hf, config)["image"])


def gathered(rows: list[list[Any]], fields: tuple[str, ...]) -> dict[str, list]:
    """Per-row features as Tenstorrent's runner gathers them (``None`` for a row without images, and for
    an image without the field)."""
    return {
        field: [
            [item[field].data if field in item else None for item in row] if row else None for row in rows
        ]
        for field in fields
    }


def build(generator_cls: type, data_parallel: int = 1) -> Any:
    mesh = SimpleNamespace(mesh="MESH", trace_mode="all", data_parallel=data_parallel, optimizations=None)
    return adapter_for(generator_cls).initialize_vllm_model("HF", mesh, MAX_BATCH, 256)


def data_parallel_refusal(name: str) -> str:
    return (
        f"{name}'s prefill takes no empty_slots in the installed tt-metal, so its rows cannot go to a "
        "data-parallel submesh: set TT option data_parallel=1 for this model (it is 2)."
    )


def prefill_args(rows: int) -> dict[str, Any]:
    return {
        "tokens": torch.ones(rows, 6, dtype=torch.int64),
        "page_table": torch.zeros(rows, 1, dtype=torch.int32),
        "kv_cache": [],
        "prompt_lens": [6, 5, 4][:rows],
    }


def assert_rows_equal(got: list, expected: list) -> None:
    assert len(got) == len(expected)
    for got_row, expected_row in zip(got, expected, strict=True):
        if expected_row is None:
            assert got_row is None
            continue
        assert len(got_row) == len(expected_row)
        for got_image, expected_image in zip(got_row, expected_row, strict=True):
            assert torch.equal(got_image, expected_image)


# ----------------------------------------------------------------------------------------------- Gemma 3


def test_gemma3_model_gets_each_rows_images_and_text_rows_none() -> None:
    items = gemma3_items(pictures(SIZES))
    assert [item["pixel_values"].data.shape[0] for item in items] == [4, 1, 4]  # crops + 1: per image
    rows = [[items[0], items[1]], [], [items[2]]]  # two images, text only, one image
    features = gathered(rows, ("pixel_values", "num_patches"))
    model = build(image_doubles.Gemma3ForConditionalGeneration)
    logits = model.prefill_forward(**prefill_args(3), **features)
    assert logits.shape == (3, 1, 16)  # logits, unpacked as for any class
    prepared = model.generator.prepared
    assert_rows_equal([p["pixel_values"] for p in prepared], features["pixel_values"])
    assert all(set(p) == {"pixel_values"} for p in prepared)  # num_patches is not Gemma's to read
    assert takes_images(model) and not hasattr(model, "mm_limits_per_prompt")
    assert model.model_capabilities["supports_sample_on_device"] is True


def test_gemma3_text_only_prefill_sends_no_image_keywords() -> None:
    model = build(image_doubles.Gemma3ForConditionalGeneration)
    model.prefill_forward(**prefill_args(2), pixel_values=[None, None])
    assert model.generator.prepared == [{}, {}]


def test_gemma3_prefills_with_images_untraced() -> None:
    """tt-metal's traced prefill passes no pixel_values on (generator.py @ 1a6b64e0 _easy_trace_prefill),
    so a prefill with images goes untraced; text-only prefills keep the trace mode's setting."""
    model = build(image_doubles.Gemma3ForConditionalGeneration)  # trace_mode "all"
    features = gathered([[gemma3_items(pictures(SIZES[:1]))[0]], []], ("pixel_values",))
    model.prefill_forward(**prefill_args(2), **features)
    model.prefill_forward(**prefill_args(2), pixel_values=[None, None])
    traced = [args["enable_trace"] for name, args in model.generator.calls if name == "prefill_forward_text"]
    assert traced == [False, True]


def test_images_for_a_class_without_images_are_refused_by_name() -> None:
    from tests.contract import tt_metal_doubles as doubles

    model = build(doubles.TttCompatLlama)
    features = gathered([[gemma3_items(pictures(SIZES[:1]))[0]]], ("pixel_values",))
    with pytest.raises(
        ValueError, match=r"^TttCompatLlama takes no images, but the prefill has \['pixel_values'\]"
    ):
        model.prefill_forward(**prefill_args(1), **features)


def test_the_runners_gathered_images_reach_each_class_as_it_reads_them() -> None:
    """The runner's own gathering (worker/multimodal_inputs.py, from each request's ``mm_features`` as
    vLLM's scheduler hands them over) into the adapter: each double's model gets every row's images."""

    def request(items: list[Any]) -> SimpleNamespace:
        # Listed last image first: the runner orders them by their place in the prompt.
        specs = [
            MultiModalFeatureSpec(item, "image", f"image-{i}", PlaceholderRange(offset=10 * i, length=4))
            for i, item in enumerate(items)
        ]
        return SimpleNamespace(mm_features=specs[::-1])

    for cls, make_items, fields in [
        (image_doubles.Gemma3ForConditionalGeneration, gemma3_items, ("pixel_values",)),
        (image_doubles.Mistral3ForConditionalGeneration, mistral3_items, ("pixel_values",)),
    ]:
        items = make_items(pictures(SIZES))
        rows = [[items[0], items[1]], [], [items[2]]]
        kwargs = prefill_image_kwargs([request(row) for row in rows])
        model = build(cls)
        model.prefill_forward(**prefill_args(3), **kwargs)
        expected = gathered(rows, fields)["pixel_values"]
        got = [p["pixel_values"] for p in model.generator.prepared]
        if cls is image_doubles.Mistral3ForConditionalGeneration:  # stacked per row, padded
            got = [None if g is None else [g[i, :, :h, :w] for i, (h, w) in enumerate(p["image_sizes"])]
                   for g, p in zip(got, model.generator.prepared, strict=True)]  # fmt: skip
        assert_rows_equal(got, expected)

    items = qwen25_vl_items(pictures(SIZES[:2]))
    model = build(image_doubles.Qwen2_5_VLForConditionalGeneration)
    _, deltas = model.prefill_forward(
        **prefill_args(3), **prefill_image_kwargs([request([]), request([items[1]]), request([items[0]])])
    )
    ((pixel_values, grids),) = model.generator.vision_inputs
    assert torch.equal(
        pixel_values, torch.cat([items[1]["pixel_values"].data, items[0]["pixel_values"].data])
    )
    assert grids.tolist() == [
        items[1]["image_grid_thw"].data.tolist(),
        items[0]["image_grid_thw"].data.tolist(),
    ]
    assert deltas.shape == (3, 1)

    items = qwen3_vl_items(pictures(SIZES[:2]))
    model = build(image_doubles.Qwen3VLForConditionalGeneration)
    model.prefill_forward(
        **prefill_args(3), **prefill_image_kwargs([request([]), request([items[1]]), request([items[0]])])
    )
    assert_qwen3_vl_saw(model, [None, items[1], items[0]])


# -------------------------------------------------------------------------------------------- Qwen2.5-VL


def test_qwen25_vl_gets_image_rows_pixels_and_grids_and_returns_rope_deltas() -> None:
    items = qwen25_vl_items(pictures(SIZES[:2]))
    rows = [[], [items[0]], [items[1]]]
    features = gathered(rows, ("pixel_values", "image_grid_thw"))
    model = build(image_doubles.Qwen2_5_VLForConditionalGeneration)
    logits, rope_deltas = model.prefill_forward(**prefill_args(3), empty_slots=[2, 0, 3], **features)
    assert logits.shape == (3, 1, 16)
    assert rope_deltas.flatten().tolist() == [-100, -101, -102]
    ((pixel_values, grids),) = model.generator.vision_inputs
    expected = [item["pixel_values"].data for item in items]
    assert torch.equal(pixel_values, torch.cat(expected))
    assert grids.tolist() == [item["image_grid_thw"].data.tolist() for item in items]
    (qwen_call,) = [args for name, args in model.generator.calls if name == "qwen_prefill"]
    assert qwen_call["unread"] == []  # neither sampling_params nor start_pos reach it
    (text_call,) = [args for name, args in model.generator.calls if name == "qwen_prefill_forward_text"]
    assert text_call == {"enable_trace": True, "empty_slots": [2, 0, 3]}


def test_qwen25_vl_samples_on_the_host_since_its_prefill_returns_logits() -> None:
    model = build(image_doubles.Qwen2_5_VLForConditionalGeneration)
    assert takes_images(model) and model.mm_limits_per_prompt == {"image": 1}  # its processing info's
    assert model.model_capabilities["supports_sample_on_device"] is False
    with pytest.raises(ValueError, match="prefill does not sample"):
        model.prefill_forward(**prefill_args(1), sampling_params=object())


def test_qwen25_vl_decode_gets_the_rope_deltas() -> None:
    model = build(image_doubles.Qwen2_5_VLForConditionalGeneration)
    tokens, positions = torch.zeros(MAX_BATCH, 1, dtype=torch.int64), torch.tensor([3, -1, 5, -1])
    deltas = [-7, 0, -2, 0]
    table = torch.zeros(MAX_BATCH, 1, dtype=torch.int32)
    model.decode_forward(tokens, positions, table, [], reset_batch=True, rope_deltas_all_users=deltas)
    model.decode_forward(tokens, positions, table, [])
    assert model.generator.rope_deltas == [deltas]
    decodes = [args for name, args in model.generator.calls if name == "decode_forward"]
    assert [d["reset_batch"] for d in decodes] == [True, False]


def test_rope_deltas_for_a_class_without_mrope_are_refused() -> None:
    model = build(image_doubles.Gemma3ForConditionalGeneration)
    with pytest.raises(NotImplementedError, match="takes no rope_deltas_all_users"):
        model.decode_forward(
            torch.zeros(MAX_BATCH, 1, dtype=torch.int64), torch.zeros(MAX_BATCH), None, [],
            rope_deltas_all_users=[0] * MAX_BATCH,
        )  # fmt: skip


# ---------------------------------------------------------------------------------------------- Mistral 3


def test_mistral3_model_gets_each_rows_images_padded_with_their_sizes() -> None:
    items = mistral3_items(pictures(SIZES))
    shapes = [tuple(item["pixel_values"].data.shape) for item in items]
    assert shapes == [(3, 32, 64), (3, 32, 32), (3, 64, 32)]  # unpadded, each its own size
    rows = [[], [items[0], items[2]], [items[1]]]
    features = gathered(rows, ("pixel_values",))
    model = build(image_doubles.Mistral3ForConditionalGeneration)
    model.prefill_forward(**prefill_args(3), **features)
    prepared = model.generator.prepared
    assert prepared[0] == {"pixel_values": None, "image_sizes": None}
    two = prepared[1]["pixel_values"]
    assert two.shape == (2, 3, 64, 64)  # zero padded to the row's largest, as transformers takes them
    assert torch.equal(two[0, :, :32, :64], items[0]["pixel_values"].data) and not two[0, :, 32:].any()
    assert torch.equal(two[1, :, :64, :32], items[2]["pixel_values"].data) and not two[1, :, :, 32:].any()
    assert prepared[1]["image_sizes"] == [(32, 64), (64, 32)]
    assert torch.equal(prepared[2]["pixel_values"], items[1]["pixel_values"].data[None])
    assert prepared[2]["image_sizes"] == [(32, 32)]
    (given,) = [args["given"] for name, args in model.generator.calls if name == "mistral3_prefill"]
    assert given == ["images", "kv_cache", "page_table", "prompt_lens", "tokens"]
    assert model.model_capabilities["supports_sample_on_device"] is False


def test_tenstorrents_runner_keywords_never_reach_mistral3s_model() -> None:
    """What vllm-tt-plugin e3fc849 passes (``pixel_values``/``image_grid_thw`` per row, no ``images``):
    the class reads only ``images``, so its model gets no image (docs/tenstorrent-runner-parity.md)."""
    items = mistral3_items(pictures(SIZES[:1]))
    generator = image_doubles.Mistral3ForConditionalGeneration.initialize_vllm_model("HF", "MESH", MAX_BATCH)
    tt_kwargs = gathered([[items[0]]], ("pixel_values", "image_grid_thw"))
    generator.prefill_forward(**prefill_args(1), enable_trace=True, start_pos=[0], **tt_kwargs)
    assert generator.prepared == [{"pixel_values": None, "image_sizes": None}]


def test_mistral3_refuses_what_its_prefill_would_drop() -> None:
    with pytest.raises(NotImplementedError, match="drops start_pos"):
        build(image_doubles.Mistral3ForConditionalGeneration).prefill_forward(
            **prefill_args(1), start_pos=[2]
        )
    with pytest.raises(ValueError) as refused:
        build(image_doubles.Mistral3ForConditionalGeneration, data_parallel=2)
    assert str(refused.value) == data_parallel_refusal("Mistral3ForConditionalGeneration")


# ---------------------------------------------------------------------------------------------- Qwen3-VL


def assert_qwen3_vl_saw(model: Any, rows: list[Any]) -> None:
    """One prefill call per row, whose vision tower got that row's image (or nothing for a text row)."""
    assert [len(call) for call in model.generator.vision_inputs] == [1] * len(rows)
    for (seen,), item in zip(model.generator.vision_inputs, rows, strict=True):
        if item is None:
            assert seen is None
            continue
        pixel_values, grids = seen
        assert torch.equal(pixel_values, item["pixel_values"].data)
        assert grids.dtype == torch.int32 and grids.tolist() == [item["image_grid_thw"].data.tolist()]


@pytest.mark.parametrize(
    "generator_cls",
    [image_doubles.Qwen3VLForConditionalGeneration, image_doubles.Qwen3VLRowZero],
    ids=["newest", "has-images-from-row-0"],
)
def test_qwen3_vl_gets_each_rows_image_one_row_per_call(generator_cls: type) -> None:
    """A text row first, as in a batch whose first request has no image: every stored version of the
    class gets each row's image, since each row goes alone (older ones look at row 0 only)."""
    items = qwen3_vl_items(pictures([SIZES[0], SIZES[2]]))
    assert [tuple(item["pixel_values"].data.shape) for item in items] == [(16, 1536), (32, 1536)]
    features = gathered([[], [items[0]], [items[1]]], ("pixel_values", "image_grid_thw"))
    model = build(generator_cls)
    logits, rope_deltas = model.prefill_forward(**prefill_args(3), empty_slots=[2, 0, 3], **features)
    assert logits.shape == (3, 1, 16) and logits[:, 0, 0].tolist() == [6, 5, 4]  # each row's own
    assert rope_deltas.shape == (3, 1) and rope_deltas.flatten().tolist() == [-106, -105, -104]
    assert_qwen3_vl_saw(model, [None, items[0], items[1]])
    calls = [args for name, args in model.generator.calls if name == "qwen3_prefill"]
    # Neither empty_slots nor sampling_params nor start_pos: its prefill reads none of them.
    assert calls == [{"rows": 1, "enable_trace": True, "unread": []}] * 3


def test_qwen3_vl_declares_one_image_and_samples_on_the_host() -> None:
    model = build(image_doubles.Qwen3VLForConditionalGeneration)
    assert takes_images(model) and model.mm_limits_per_prompt == {"image": 1}  # its processing info's
    assert model.model_capabilities == {"supports_prefix_caching": False, "supports_async_decode": True}
    with pytest.raises(ValueError, match="prefill does not sample"):
        model.prefill_forward(**prefill_args(1), sampling_params=object())
    with pytest.raises(NotImplementedError, match="cannot prefill after a cached prefix"):
        model.prefill_forward(**prefill_args(1), start_pos=[2])


def test_qwen3_vl_decode_gets_the_rope_deltas_and_no_reset_batch() -> None:
    """Its base's decode_forward (generator.py @ 5f866a08) takes no reset_batch."""
    model = build(image_doubles.Qwen3VLForConditionalGeneration)
    tokens, positions = torch.zeros(MAX_BATCH, 1, dtype=torch.int64), torch.tensor([3, -1, 5, -1])
    table = torch.zeros(MAX_BATCH, 1, dtype=torch.int32)
    model.decode_forward(tokens, positions, table, [], reset_batch=True, rope_deltas_all_users=[-7, 0, -2, 0])
    assert model.generator.rope_deltas == [[-7, 0, -2, 0]]
    (decode,) = [args for name, args in model.generator.calls if name == "decode_forward"]
    assert decode["reset_batch"] is False and decode["written_slots"] == [0, 2]


def test_qwen3_vl_refuses_data_parallel() -> None:
    """It builds one model whatever tt_data_parallel says and reads no empty_slots: its rows cannot be
    placed on a submesh."""
    with pytest.raises(ValueError) as refused:  # at start, before any request
        build(image_doubles.Qwen3VLForConditionalGeneration, data_parallel=2)
    assert str(refused.value) == data_parallel_refusal("Qwen3VLForConditionalGeneration")


@requires_vision_env
def test_qwen3_vl_gets_what_vllms_own_qwen3_vl_processing_makes() -> None:
    """Where torchvision works: the image processor Qwen3-VL's checkpoints load (transformers'
    Qwen2VLImageProcessor, torchvision backend) and vLLM's own Qwen3VLMultiModalProcessor field config cut
    the items; the runner gathers them per row and each row's image reaches the class's vision tower."""
    from transformers import Qwen2VLImageProcessor
    from vllm.model_executor.models.qwen3_vl import Qwen3VLMultiModalProcessor

    processor = Qwen2VLImageProcessor(**QWEN3_VL_PROCESSOR_SETTINGS)
    out = processor(pictures([SIZES[0], SIZES[2]]), return_tensors="pt")
    hf = BatchFeature({"pixel_values": out["pixel_values"], "image_grid_thw": out["image_grid_thw"]})
    vision_config = SimpleNamespace(spatial_merge_size=2)
    info = SimpleNamespace(get_hf_config=lambda: SimpleNamespace(vision_config=vision_config))
    config = Qwen3VLMultiModalProcessor._get_mm_fields_config(SimpleNamespace(info=info), hf, {})
    items = list(MultiModalKwargsItems.from_hf_inputs(hf, config)["image"])

    def request(item: Any | None) -> SimpleNamespace:
        specs = [] if item is None else [MultiModalFeatureSpec(item, "image", "x", PlaceholderRange(3, 4))]
        return SimpleNamespace(mm_features=specs)

    model = build(image_doubles.Qwen3VLRowZero)
    rows = [None, items[1], items[0]]
    model.prefill_forward(**prefill_args(3), **prefill_image_kwargs(map(request, rows)))
    assert_qwen3_vl_saw(model, rows)
