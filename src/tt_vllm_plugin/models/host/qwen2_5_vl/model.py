"""Qwen2.5-VL on the host device behind the TT model contract, with tt-metal's multimodal keywords.

The language model is the shared Llama-family decoder (``host/llama``: paged attention, HostLinear,
Qwen2's q/k/v biases) rotated by M-RoPE (``host/mrope.py``). The vision tower and the 3-D position index
are transformers' own modules (``Qwen2_5_VisionTransformerPretrainedModel``, ``get_rope_index``), as
tt-metal's Qwen2.5-VL generator also keeps them on the host (``models/demos/qwen25_vl/tt/generator_vllm.py``
@00493af6: the reference model's visual tower, ``multimodal_rope_from_hf``): the tower runs once per image,
outside the paged cache, so nothing of the host layers would be reused by rewriting it, and transformers'
windowed attention is the definition the output must match.

``prefill_forward`` takes ``pixel_values[i]`` / ``image_grid_thw[i]`` per row (None or one tensor per
image, all of the row's request's images) and returns ``(logits, rope_deltas)``; ``decode_forward`` takes
``rope_deltas_all_users`` (one delta per slot), as tt-metal's class does.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F

from tt_vllm_plugin.models.contract import (
    SUPPORTS_ASYNC_DECODE,
    SUPPORTS_CHUNKED_PREFILL,
    SUPPORTS_PREFIX_CACHING,
    SUPPORTS_SAMPLE_ON_DEVICE,
    KVCache,
)
from tt_vllm_plugin.models.host.checkpoint import load_tensors, model_folder
from tt_vllm_plugin.models.host.llama.architectures import TTQwen2ForCausalLM
from tt_vllm_plugin.models.host.mrope import mrope_rotation
from tt_vllm_plugin.models.host.rope import rope_frequencies


def _rows(values: Sequence[Any] | None, count: int) -> list[Any]:
    return list(values) if values is not None else [None] * count


class TTQwen2_5_VLForConditionalGeneration(TTQwen2ForCausalLM):
    """Qwen2.5-VL: images through transformers' vision tower, text through the host decoder."""

    supports_multimodal = True  # contract.takes_images
    mm_limits_per_prompt = {"image": 4}
    # No prompt logprobs: prefill returns (logits, rope_deltas), never all positions' logits.
    model_capabilities = {
        SUPPORTS_PREFIX_CACHING: True,  # vLLM's block hashes include the images' hashes
        SUPPORTS_CHUNKED_PREFILL: True,  # an image is never split between chunks (the platform's setting)
        SUPPORTS_SAMPLE_ON_DEVICE: True,
        SUPPORTS_ASYNC_DECODE: True,
    }

    def __init__(
        self, config: Any, weights: Any, torch_device: torch.device, dtype: torch.dtype, max_seq_len: int
    ):
        super().__init__(config.text_config, weights, torch_device, dtype, max_seq_len)
        self.vl_config = config
        self.inv_freq = rope_frequencies(config.text_config, self.head_dim, max_seq_len).inv_freq.to(
            torch_device
        )
        self.mrope_section = list(config.text_config.rope_parameters["mrope_section"])
        self.visual = _vision_tower(config, torch_device, dtype)
        self._pass: tuple[torch.Tensor, Any] | None = None  # the prefill's embeddings and rotation
        self._decode_deltas: torch.Tensor | None = None  # the active decode slots' deltas

    @classmethod
    def check_config(cls, config: Any, max_seq_len: int) -> None:
        super().check_config(config.text_config, max_seq_len)

    @classmethod
    def load_weights(cls, config: Any, num_layers: int, device: Any) -> Any:
        text = config.text_config
        text._name_or_path = config._name_or_path  # the checkpoint folder, read by load_weights
        text.tie_word_embeddings = config.tie_word_embeddings
        return super().load_weights(text, num_layers, device)

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
    ) -> TTQwen2_5_VLForConditionalGeneration:
        hf_config.num_hidden_layers = hf_config.text_config.num_hidden_layers  # read by the base
        return super().initialize_vllm_model(
            hf_config, mesh_device, max_batch_size, max_seq_len, n_layers, tt_data_parallel, optimizations
        )

    # ---- contract

    def prefill_forward(
        self,
        tokens: torch.Tensor,
        page_table: torch.Tensor,
        kv_cache: KVCache,
        prompt_lens: Any,
        start_pos: Any = None,
        enable_trace: bool = False,
        sampling_params: Any = None,
        empty_slots: Sequence[int] | None = None,
        pixel_values: Sequence[Any] | None = None,
        image_grid_thw: Sequence[Any] | None = None,
        **_: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        lens = [int(n) for n in prompt_lens]
        starts = [0] * len(lens) if start_pos is None else [int(s) for s in start_pos]
        pixels, grids = _rows(pixel_values, len(lens)), _rows(image_grid_thw, len(lens))
        embeddings, positions, deltas = [], [], []
        with torch.inference_mode():
            for row, (start, end) in enumerate(zip(starts, lens, strict=True)):
                ids = tokens[row, :end].to(self.device).long()
                row_grids = torch.stack([g.reshape(3) for g in grids[row]]).long() if grids[row] else None
                position, delta = self._rope_index(ids, row_grids)
                embedding = F.embedding(ids[start:end], self.weights.embed)
                if pixels[row]:
                    self._put_images(embedding, ids, start, end, pixels[row], row_grids)
                embeddings.append(embedding)
                positions.append(position[:, start:end])
                deltas.append(delta)
            self._pass = (
                torch.cat(embeddings),
                mrope_rotation(
                    self.inv_freq, torch.cat(positions, 1), self.mrope_section, self.dtype, self.head_dim
                ),
            )
        try:
            out = super().prefill_forward(
                tokens, page_table, kv_cache, lens, starts, enable_trace, sampling_params, False, empty_slots
            )
        finally:
            self._pass = None
        return out, torch.tensor(deltas, dtype=torch.int64)

    def decode_forward(
        self,
        tokens: torch.Tensor,
        start_pos: torch.Tensor,
        page_table: torch.Tensor,
        kv_cache: KVCache,
        enable_trace: bool = False,
        read_from_device: bool = True,
        sampling_params: Any = None,
        reset_batch: bool = False,
        rope_deltas_all_users: Sequence[int] | None = None,
        **_: Any,
    ) -> torch.Tensor:
        deltas = torch.as_tensor(rope_deltas_all_users or [0] * tokens.shape[0], dtype=torch.int64)
        self._decode_deltas = deltas[torch.as_tensor(start_pos) >= 0].to(self.device)
        try:
            return super().decode_forward(
                tokens,
                start_pos,
                page_table,
                kv_cache,
                enable_trace,
                read_from_device,
                sampling_params,
                reset_batch,
            )
        finally:
            self._decode_deltas = None

    def forward(
        self, ids: torch.Tensor, positions: torch.Tensor, kv_cache: KVCache, attention: Any
    ) -> torch.Tensor:
        if self._pass is not None:  # a prefill: image features among the embeddings, M-RoPE positions
            embeddings, rotate = self._pass
            return self.forward_embeddings(embeddings, rotate, kv_cache, attention)
        # A decode step: text tokens, whose three M-RoPE positions are one, shifted by their delta.
        shifted = positions + (self._decode_deltas if self._decode_deltas is not None else 0)
        return super().forward(ids, shifted, kv_cache, attention)

    # ---- images

    def _rope_index(self, ids: torch.Tensor, grids: torch.Tensor | None) -> tuple[torch.Tensor, int]:
        """(3, len) M-RoPE positions of one row's tokens and its delta (transformers' get_rope_index)."""
        if grids is None:
            return ids.new_tensor(range(len(ids)))[None].expand(3, -1), 0
        from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel

        types = (ids == self.vl_config.image_token_id).int()[None]
        model = SimpleNamespace(config=self.vl_config)
        model.get_vision_position_ids = lambda *a, **k: Qwen2_5_VLModel.get_vision_position_ids(
            model, *a, **k
        )
        position, delta = Qwen2_5_VLModel.get_rope_index(model, ids[None], types, image_grid_thw=grids.cpu())
        return position[:, 0].to(self.device), int(delta.reshape(-1)[0])

    def _put_images(
        self,
        embedding: torch.Tensor,
        ids: torch.Tensor,
        start: int,
        end: int,
        pixels: Sequence[torch.Tensor],
        grids: torch.Tensor,
    ) -> None:
        """Write the features of the images overlapping tokens [start, end) over their placeholders."""
        where = torch.nonzero(ids == self.vl_config.image_token_id).squeeze(1)
        merge = self.vl_config.vision_config.spatial_merge_size
        offset = 0
        for image, grid in zip(pixels, grids, strict=True):
            count = int(grid.prod()) // merge**2
            token_positions = where[offset : offset + count]
            offset += count
            inside = (token_positions >= start) & (token_positions < end)
            if not bool(inside.any()):
                continue  # in the cached prefix: only its grid (positions) matters
            if not image.is_floating_point():
                raise ValueError(
                    f"pixel_values arrived as {image.dtype}, not rescaled and normalised: this model takes "
                    "them as transformers' processor makes them (the platform turns off vLLM's "
                    "mm_device_do_normalize)."
                )
            out = self.visual(image.to(self.device, self.visual.dtype), grid_thw=grid[None].to(self.device))
            features = out.pooler_output.to(embedding.dtype)
            embedding[token_positions[inside] - start] = features[inside]


def _vision_tower(config: Any, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """transformers' vision tower with the checkpoint's ``visual.*`` weights, eager attention."""
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

    from tt_vllm_plugin.models.host.checkpoint import safetensors_locations

    vision_config = config.vision_config
    vision_config._attn_implementation = "eager"
    tower = Qwen2_5_VisionTransformerPretrainedModel._from_config(vision_config, dtype=dtype)
    folder = model_folder(config)
    names = [name for name in safetensors_locations(folder) if name.startswith("visual.")]
    state = {
        name.removeprefix("visual."): tensor
        for name, tensor in load_tensors(folder, names, dtype, device).items()
    }
    tower.load_state_dict(state, strict=True)
    return tower.to(device).eval()
