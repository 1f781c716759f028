"""Images for the model: each prefill row's image features, and M-RoPE deltas from prefill to decode.

vLLM's multimodal processor (in the API server or ``vllm.LLM``) turned each image into features; they reach
the runner as the request's ``mm_features`` (one ``MultiModalFeatureSpec`` per image: its modality, its
placeholder range in the prompt and its ``MultiModalKwargsItem``), kept with the request state, so a
request recomputed after a preemption prefills with its images again. The keyword arguments follow
Tenstorrent's runner (vllm-tt-plugin ``src/vllm_tt_plugin/model_runner.py`` @00a25104,
``_gather_multi_modal_inputs``) and tt-metal's Qwen2.5-VL generator
(``models/demos/qwen25_vl/tt/generator_vllm.py`` @00493af6): per batch row, ``pixel_values[i]`` is None or
one tensor per image, ``image_grid_thw[i]`` likewise. Every field vLLM's processor made is passed (Mistral
3's ``image_sizes`` too, which Tenstorrent's runner leaves out). M-RoPE models return
``(logits, rope_deltas)`` from prefill; each request's delta is passed to every decode as
``rope_deltas_all_users``, one entry per decode slot.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

IMAGE = "image"


def prefill_image_kwargs(requests: Iterable[Any]) -> dict[str, list[list[Any] | None]]:
    """The image keyword arguments of one ``prefill_forward`` whose rows are ``requests`` (in row order):
    ``{field: [None | [per-image data]] per row}``; ``pixel_values`` is always there."""
    rows = [_image_fields(getattr(request, "mm_features", None) or ()) for request in requests]
    names = {"pixel_values"} | {name for row in rows if row for name in row}
    return {name: [None if row is None else row.get(name) for row in rows] for name in sorted(names)}


def _image_fields(features: Sequence[Any]) -> dict[str, list[Any]] | None:
    """One request's images as ``{field: [data per image]}`` in prompt order, or None without images."""
    fields: dict[str, list[Any]] = {}
    images = sorted(features, key=lambda feature: feature.mm_position.offset)
    for feature in images:
        if feature.modality != IMAGE:  # the platform caps other modalities at 0 per prompt
            raise NotImplementedError(f"{feature.modality} input reached the runner; it passes images only.")
        if feature.data is None:
            raise RuntimeError(f"image {feature.identifier} reached the runner without its features.")
        for name, element in feature.data.items():
            fields.setdefault(name, []).append(element.data)
    return fields or None


class RopeDeltas:
    """Each request's M-RoPE delta (text position minus token index after its images), from its last
    prefill, for every later decode."""

    def __init__(self) -> None:
        self._by_request: dict[str, int] = {}

    def record(self, req_ids: Sequence[str], deltas: Any) -> None:
        values = deltas.reshape(-1).tolist() if isinstance(deltas, torch.Tensor) else list(deltas)
        for req_id, delta in zip(req_ids, values, strict=False):
            self._by_request[req_id] = int(delta)

    def for_slots(self, req_ids: Sequence[str], slots: Sequence[int], max_batch: int) -> list[int]:
        """``rope_deltas_all_users``: the delta of the request in each decode slot, 0 in empty slots."""
        deltas = [0] * max_batch
        for req_id, slot in zip(req_ids, slots, strict=True):
            deltas[int(slot)] = self._by_request.get(req_id, 0)
        return deltas

    def keep_only(self, live: Iterable[str]) -> None:
        """Forget finished requests (a preempted one keeps its entry until its recompute replaces it)."""
        keep = set(live)
        self._by_request = {req_id: d for req_id, d in self._by_request.items() if req_id in keep}
