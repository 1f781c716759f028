"""The host Gemma 3 with images behind the TT model contract (see ``contract.py``, "Images").

As transformers' ``Gemma3ForConditionalGeneration``: the text decoder is the host Gemma 3 text model
(``host/gemma3``); each image's ``pixel_values`` go through the SigLIP tower and the projector
(``vision.py``) and its ``mm_tokens_per_image`` features replace the embeddings of its image tokens (in
prompt order, unscaled); the tokens of each image attend to each other in both directions
(``bidirectional.py``). Its prefill takes what tt-metal's ``Gemma3ForConditionalGeneration`` takes:
``pixel_values``, per row ``None`` or one ``(crops + 1, 3, S, S)`` tensor per image (vLLM's Gemma 3 items).

Like tt-metal's class it declares neither prefix caching nor chunked prefill: vLLM's CPU attention kernels
cannot attend bidirectionally over a cached prefix, so an image row is attended from its own new tokens.
"""

from __future__ import annotations

from typing import Any

import torch

from tt_vllm_plugin.models.contract import (
    PREFILL_TAKES_DECODE_ROWS,
    SUPPORTS_CHUNKED_PREFILL,
    SUPPORTS_PREFIX_CACHING,
)
from tt_vllm_plugin.models.host.bidirectional import Spans
from tt_vllm_plugin.models.host.checkpoint import model_folder
from tt_vllm_plugin.models.host.contract_hooks import HostContractModel, PrefillImages
from tt_vllm_plugin.models.host.gemma3.model import HostGemma3Model
from tt_vllm_plugin.models.host.gemma3.weights import load_gemma3_weights
from tt_vllm_plugin.models.host.gemma3_mm.vision import Gemma3Vision
from tt_vllm_plugin.models.host.gemma3_mm.weights import Gemma3MMNaming

# vLLM's Gemma 3 items carry num_patches too (crops + 1 per image): the pixel values' own length says it.
_IGNORED_FIELDS = ("num_patches",)


def image_blocks(positions: torch.Tensor) -> list[tuple[int, int]]:
    """[first, end) of each run of consecutive ``positions`` (the image tokens of one image each)."""
    if positions.numel() == 0:
        return []
    breaks = (torch.nonzero(positions.diff() != 1).flatten() + 1).tolist()
    starts, ends = [0, *breaks], [*breaks, positions.numel()]
    return [(int(positions[s]), int(positions[e - 1]) + 1) for s, e in zip(starts, ends, strict=True)]


class HostGemma3MMModel(HostGemma3Model):
    """Gemma 3 with images implementing the TT model contract."""

    model_capabilities = {
        **HostContractModel.model_capabilities,
        SUPPORTS_PREFIX_CACHING: False,
        SUPPORTS_CHUNKED_PREFILL: False,
        # Its prefill takes whole prompts with their images, never a row's continuation.
        PREFILL_TAKES_DECODE_ROWS: False,
    }
    supports_multimodal = True  # contract.TAKES_IMAGES

    vision: Gemma3Vision
    image_token_id: int

    @classmethod
    def check_config(cls, config: Any, max_seq_len: int) -> None:
        """The platform asks with the whole checkpoint config: its text decoder is what is checked."""
        super().check_config(getattr(config, "text_config", config), max_seq_len)

    @classmethod
    def initialize_vllm_model(
        cls,
        hf_config: Any,
        mesh_device: Any,
        max_batch_size: int,
        max_seq_len: int,
        n_layers: int | None = None,
        tt_data_parallel: int = 1,
        optimizations: str = "performance",
    ) -> HostGemma3MMModel:
        """The text decoder from ``hf_config.text_config``, the image encoder beside it."""
        text = hf_config.text_config
        num_layers = cls.layers_to_load(text, mesh_device, max_seq_len, n_layers)
        folder = model_folder(hf_config)
        naming = Gemma3MMNaming.of(folder)
        dtype, device = mesh_device.dtype, mesh_device.torch_device
        tied = bool(getattr(hf_config, "tie_word_embeddings", getattr(text, "tie_word_embeddings", True)))
        weights = load_gemma3_weights(
            folder, num_layers, bool(getattr(text, "attention_bias", False)), tied, dtype, device,
            model_prefix=naming.text, lm_head=naming.lm_head,
        )  # fmt: skip
        model = cls(text, weights, device, dtype, max_seq_len)
        model.vision = Gemma3Vision.load(hf_config, folder, naming, dtype, device)
        model.image_token_id = int(hf_config.image_token_id)
        return model

    def prefill_images(
        self, tokens: torch.Tensor, spans: list[tuple[int, int]], features: dict[str, Any]
    ) -> PrefillImages | None:
        """Embeddings with each row's image features merged in, and each row's image blocks; None for a
        prefill without image tokens to compute."""
        features = {name: rows for name, rows in features.items() if name not in _IGNORED_FIELDS}
        pixel_values = features.pop("pixel_values", None)
        if features:
            raise ValueError(f"{type(self).__name__} takes pixel_values only, got {sorted(features)}.")
        if pixel_values is not None and len(pixel_values) != len(spans):
            raise ValueError(f"pixel_values has {len(pixel_values)} rows for a prefill of {len(spans)}.")
        embeds: list[torch.Tensor] = []
        blocks: list[Spans] = []
        merged = False
        for row, (start, end) in enumerate(spans):
            images = None if pixel_values is None else pixel_values[row]
            row_embeds, row_blocks = self._row_inputs(row, tokens[row, :end], start, images)
            merged |= bool(row_blocks) or row_embeds is not None
            embeds.append(self.embed(tokens[row, start:end]) if row_embeds is None else row_embeds)
            blocks.append(row_blocks)
        return PrefillImages(torch.cat(embeds), blocks) if merged else None

    def _row_inputs(
        self, row: int, row_tokens: torch.Tensor, start: int, images: list[torch.Tensor] | None
    ) -> tuple[torch.Tensor | None, Spans]:
        """One row's new embeddings (None: plain tokens) and its image blocks among the new tokens."""
        positions = torch.nonzero(row_tokens == self.image_token_id).flatten()
        if positions.numel() == 0:
            if images:
                raise ValueError(f"prefill row {row} has pixel_values but no image tokens.")
            return None, ()
        blocks = image_blocks(positions)
        split = [block for block in blocks if block[0] < start < block[1]]
        if split:
            raise ValueError(
                f"prefill row {row}: the image at positions {split[0]} is split by the cached prefix of "
                f"{start} tokens (an image is computed in one pass)."
            )
        new = positions >= start
        if not bool(new.any()):
            return None, ()  # every image is in the cached prefix
        if not images:
            raise ValueError(f"prefill row {row} has {positions.numel()} image tokens but no pixel_values.")
        if any(not image.is_floating_point() for image in images):
            raise ValueError(
                f"prefill row {row}: pixel_values arrived as {images[0].dtype}, not rescaled and normalised: "
                "this model takes them as transformers' image processor makes them."
            )
        found = torch.cat([self.vision.features(image) for image in images]).flatten(0, 1)
        if found.shape[0] != positions.numel():
            raise ValueError(
                f"prefill row {row}: {positions.numel()} image tokens but {found.shape[0]} image features "
                f"({len(images)} image(s) of {self.vision.tokens_per_image} tokens per crop)."
            )
        embeds = self.embed(row_tokens[start:])
        embeds[positions[new] - start] = found[new].to(embeds.dtype)
        return embeds, tuple(block for block in blocks if block[0] >= start)
