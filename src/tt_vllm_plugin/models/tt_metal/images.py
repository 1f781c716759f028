"""How each tt-metal image generator class takes images, and the per-row keywords built for it.

The runner hands a prefill's image features to the adapter as Tenstorrent's runner gathers them
(vllm-tt-plugin ``model_runner.py`` @ e3fc84941bf7a1d0df32aae2c50d539259c925f0,
``_gather_multi_modal_inputs``): one keyword per field of vLLM's processed image items (``pixel_values``,
``image_grid_thw``, ...), each a list with one entry per prefill row, ``None`` for a row without images,
else one tensor per image of that row. What a generator class does with them is not in its signature:
all three take them through ``**kwargs`` (which ``signatures.py`` rightly reads as "not named"), so each
class's convention is written here from its source:

- ``Gemma3ForConditionalGeneration`` (tenstorrent/tt-metal ``models/ttt_compat/tt/generator_vllm.py`` @
  3dfeae9445a24e18e75ff2de2313c7a30bfe2bcf) hands its keywords to ``Generator.prefill_forward_text``,
  which indexes ``pixel_values[row]`` (``models/ttt_compat/tt/generator.py`` @
  1a6b64e03908f3ef0493692a2a6017f74ae06796) for the model's ``prepare_inputs_prefill``: ``pixel_values``.
- ``Qwen2_5_VLForConditionalGeneration`` (``models/demos/qwen25_vl/tt/generator_vllm.py`` @
  00493af661ce7390e6c91d36e54e5691327952b7): ``pixel_values`` and ``image_grid_thw`` per row, ``empty_slots``
  through ``**kwargs``; it returns ``(logits, rope_deltas)``, never samples at prefill, and its
  ``decode_forward`` takes ``rope_deltas_all_users``.
- ``Qwen3VLForConditionalGeneration`` (``models/demos/qwen3_vl/tt/generator_vllm.py``, the newest stored
  version, whose prefill loops over users; the index gives no commit for it): ``prefill_forward(tokens,
  page_table, kv_cache, prompt_lens, enable_trace, **kwargs)`` reads, per row ``user_id``,
  ``pixel_values[user_id]`` (None, or its images, concatenated) and ``image_grid_thw[user_id]`` (one
  ``(3,)`` grid per image, stacked), runs the vision tower (deepstack features stay inside it), returns
  ``(logits, rope_deltas)``; it asserts every ``start_pos`` is 0, forces ``enable_trace`` off, and reads
  neither ``empty_slots`` nor ``sampling_params``. Its ``decode_forward`` takes ``rope_deltas_all_users``.
  Older versions look for images in row 0 only ("we currently do not support mixed inputs of text-only
  users and text-image users"): @ 1d1ec00206d670c05ec43719a52b0d3de7015de5 batches every row's images,
  a later stored one loops over users but decides ``has_images`` from row 0. Each row therefore goes
  alone (as Tenstorrent's runner prefills, one user at a time), which every version takes right.
- ``Mistral3ForConditionalGeneration`` (generator_vllm.py @ 3dfeae94) reads ``kwargs["tokens"]``,
  ``kwargs["prompt_lens"]``, ``page_table``, ``kv_cache`` and ``images``: per row an object with
  ``.pixel_values`` and ``.image_sizes``, nothing else. vLLM's Mistral 3 processor gives each image as its
  own unpadded ``(3, h, w)`` and no ``image_sizes`` (``mistral3.py`` ``_postprocess_hf_mm_data``), so the
  sizes are the images' shapes, and a row's images are stacked zero padded, as transformers' Mistral 3
  takes them (``(n, 3, H, W)`` with ``image_sizes``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F

# Per-row image features the runner may hand over (vLLM's item field names).
IMAGE_FIELDS = ("pixel_values", "image_grid_thw", "image_sizes", "num_patches")
ROPE_DELTAS = "rope_deltas_all_users"  # Qwen2.5-VL's and Qwen3-VL's decode keyword

RowImages = Sequence[torch.Tensor | None] | None  # one row: None, or one tensor per image
PerRow = Sequence[RowImages]  # one entry per prefill row


class Packing(Enum):
    PER_ROW_KEYWORDS = "per-row keywords"  # keyword=[row: None | [tensor per image]]
    MISTRAL3_IMAGES = "images objects"  # images=[row: .pixel_values (n, 3, H, W), .image_sizes]


@dataclass(frozen=True)
class ImageConvention:
    fields: tuple[str, ...]  # the per-row fields its prefill reads (others are not sent)
    packing: Packing
    returns_rope_deltas: bool = False  # prefill returns (logits, rope_deltas)
    reads_through_kwargs: frozenset[str] = frozenset()  # text keywords its prefill reads unnamed
    decode_keywords: frozenset[str] = frozenset()
    prefill_samples: bool = True  # its prefill honours sampling_params
    max_images: int | None = None  # images per prompt it takes (None: what vLLM's processor allows)
    traced_with_images: bool = True  # False: a prefill with images must not be traced
    # True: one row per prefill call, as Tenstorrent's runner prefills (one user at a time)
    one_row_per_call: bool = False
    source: str = ""


CONVENTIONS: dict[str, ImageConvention] = {
    "Gemma3ForConditionalGeneration": ImageConvention(
        fields=("pixel_values",),
        packing=Packing.PER_ROW_KEYWORDS,
        # Generator's traced prefill (_easy_trace_prefill) hands no pixel_values on, and its own vision
        # warm-up prefills untraced ("Vision encoder warmup doesn't support trace"): generator.py @ 1a6b64e0.
        traced_with_images=False,
        source="tt-metal generator_vllm.py @ 3dfeae94, generator.py @ 1a6b64e0",
    ),
    "Qwen2_5_VLForConditionalGeneration": ImageConvention(
        fields=("pixel_values", "image_grid_thw"),
        packing=Packing.PER_ROW_KEYWORDS,
        returns_rope_deltas=True,
        reads_through_kwargs=frozenset({"empty_slots"}),
        decode_keywords=frozenset({ROPE_DELTAS}),
        prefill_samples=False,
        max_images=1,  # its TT_Qwen2_5_VLProcessingInfo.get_supported_mm_limits: {"image": 1, "video": 0}
        source="tt-metal models/demos/qwen25_vl/tt/generator_vllm.py @ 00493af6",
    ),
    "Qwen3VLForConditionalGeneration": ImageConvention(
        fields=("pixel_values", "image_grid_thw"),
        packing=Packing.PER_ROW_KEYWORDS,
        returns_rope_deltas=True,
        decode_keywords=frozenset({ROPE_DELTAS}),
        prefill_samples=False,
        max_images=1,  # its TT_Qwen3VLProcessingInfo.get_supported_mm_limits: {"image": 1, "video": 0}
        # Every stored version is right for one row: older ones look for images in row 0 only (above).
        one_row_per_call=True,
        source="tt-metal models/demos/qwen3_vl/tt/generator_vllm.py (newest stored; older @ 1d1ec002)",
    ),
    "Mistral3ForConditionalGeneration": ImageConvention(
        fields=("pixel_values",),
        packing=Packing.MISTRAL3_IMAGES,
        prefill_samples=False,
        source="tt-metal generator_vllm.py @ 3dfeae94",
    ),
}


def convention_for(generator_cls: type) -> ImageConvention | None:
    """The image convention of ``generator_cls`` (by its name, as Tenstorrent's plugin maps classes)."""
    return CONVENTIONS.get(generator_cls.__name__)


def take_image_fields(extra: dict[str, Any]) -> dict[str, PerRow]:
    """Remove the per-row image fields from ``extra``; those that carry no image at all are dropped."""
    fields = {name: extra.pop(name) for name in IMAGE_FIELDS if name in extra}
    return {name: rows for name, rows in fields.items() if rows is not None and any(map(_filled, rows))}


def _filled(row: RowImages) -> bool:
    return row is not None and len(row) > 0


def check_rows(fields: dict[str, PerRow], batch: int, owner: str) -> None:
    for name, rows in fields.items():
        if len(rows) != batch:
            raise ValueError(f"{owner}: {name} has {len(rows)} rows for a prefill of {batch}.")


def per_row_keywords(convention: ImageConvention, fields: dict[str, PerRow]) -> dict[str, list]:
    """The fields the class reads, as lists of per-row lists (``None`` for a row without images)."""
    return {
        name: [list(row) if _filled(row) else None for row in fields[name]]
        for name in convention.fields
        if name in fields
    }


def mistral3_images(pixel_values: PerRow) -> list[SimpleNamespace]:
    """One object per row, as tt-metal's Mistral3 prefill reads them: ``.pixel_values`` the row's images
    zero padded to the largest and stacked ``(n, 3, H, W)`` (None without images), ``.image_sizes`` each
    image's own ``(h, w)``. Every row gets one, so the lists it builds stay aligned with the rows."""
    images = []
    for row in pixel_values:
        if not _filled(row):
            images.append(SimpleNamespace(pixel_values=None, image_sizes=None))
            continue
        sizes = [(int(image.shape[-2]), int(image.shape[-1])) for image in row]
        height, width = max(h for h, _ in sizes), max(w for _, w in sizes)
        stacked = torch.stack(
            [F.pad(image, (0, width - image.shape[-1], 0, height - image.shape[-2])) for image in row]
        )
        images.append(SimpleNamespace(pixel_values=stacked, image_sizes=sizes))
    return images
