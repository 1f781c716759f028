"""The Gemma 3 text decoder on the host, as transformers' ``modeling_gemma3.py`` computes it.

Per layer: ``input_layernorm`` -> attention -> ``post_attention_layernorm`` -> residual add ->
``pre_feedforward_layernorm`` -> GeGLU MLP (``gelu_pytorch_tanh``) -> ``post_feedforward_layernorm`` ->
residual add. RMSNorms multiply by ``1 + w`` (folded into the weights at load, ``weights.py``); embeddings
are scaled by ``sqrt(hidden_size)`` (in the model dtype, as transformers rounds it); q and k get a per-head
RMSNorm before RoPE; scores are scaled by ``query_pre_attn_scalar ** -0.5``. Layers are sliding or full by
``layer_types``: sliding layers attend inside ``sliding_window`` and rotate with the local RoPE
(``rope_parameters["sliding_attention"]``), full layers with the global one. Final logits are soft-capped
when ``final_logit_softcapping`` is set. ``attn_logit_softcapping`` is not applied: transformers' Gemma 3
(and vLLM's) never pass it to attention (``model.py`` logs that once).

The shared host layers do the rest: the attention sublayer and the decoder's set-up (``decoder.py``),
linear layers (``linear.py``), fused elementwise kernels (``ops.py``),
RoPE (``rope.py``), attention backends with per-layer windows (``attention.py``, ``sliding_window.py``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from tt_vllm_plugin.models.contract import KVCache
from tt_vllm_plugin.models.host.attention import PassAttention
from tt_vllm_plugin.models.host.decoder import HostDecoder
from tt_vllm_plugin.models.host.gemma3.weights import Gemma3LayerWeights, Gemma3Weights
from tt_vllm_plugin.models.host.rope import rotary_embedding
from tt_vllm_plugin.models.host.sliding_window import FULL


class Gemma3Decoder(HostDecoder):
    """The decoder's math over flat tokens, with one RoPE per layer type (dimensions, weights, ops and
    attention: ``host/decoder.py``)."""

    weights: Gemma3Weights

    def __init__(
        self,
        config: Any,
        weights: Gemma3Weights,
        torch_device: torch.device,
        dtype: torch.dtype,
        max_seq_len: int,
    ) -> None:
        head_dim = int(config.head_dim)
        scale = float(config.query_pre_attn_scalar) ** -0.5
        super().__init__(config, weights, torch_device, dtype, max_seq_len, head_dim, scale)
        # transformers keeps sqrt(hidden) as a float32 buffer and casts it to the weights' dtype.
        self.embed_scale = torch.tensor(config.hidden_size**0.5).to(dtype=dtype, device=torch_device)
        self.final_softcap = getattr(config, "final_logit_softcapping", None)
        self.layer_types: list[str] = list(config.layer_types[: len(weights.layers)])
        self.ropes = {
            kind: rotary_embedding(
                config, self.head_dim, max_seq_len, dtype, torch_device, self.ops.fused, layer_type=kind
            )
            for kind in sorted(set(self.layer_types) or {FULL})
        }

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """The scaled token embeddings of ``ids`` (N, hidden)."""
        return F.embedding(ids, self.weights.embed) * self.embed_scale

    def forward(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        kv_cache: KVCache,
        attention: PassAttention,
        embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden states (N, hidden) after the final norm, for flat tokens ``ids`` at ``positions``, or
        for ``embeds`` (N, hidden) given in their place (image features merged, ``gemma3_mm``).

        Each residual add is fused with the norm after it (the pre-feedforward norm, the next layer's
        input norm, or the final norm after the last layer)."""
        rotations = {kind: rope.at(positions) for kind, rope in self.ropes.items()}
        layers = self.weights.layers
        residual = self.embed(ids) if embeds is None else embeds
        if not layers:
            return self.ops.rms_norm(residual, self.weights.norm, self.eps)
        x = self.ops.rms_norm(residual, layers[0].input_norm, self.eps)
        for index, layer in enumerate(layers):
            k_cache, v_cache = kv_cache[index]
            rotate = rotations[self.layer_types[index]]
            attn = self.attention_block(layer, x, rotate, attention, k_cache, v_cache, self.windows[index])
            attn = self.ops.rms_norm(attn, layer.post_attention_norm, self.eps)
            x, residual = self.ops.add_rms_norm(attn, residual, layer.pre_feedforward_norm, self.eps)
            mlp = self.ops.rms_norm(self._mlp(layer, x), layer.post_feedforward_norm, self.eps)
            next_norm = layers[index + 1].input_norm if index + 1 < len(layers) else self.weights.norm
            x, residual = self.ops.add_rms_norm(mlp, residual, next_norm, self.eps)
        return x

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.weights.lm_head(hidden)
        if self.final_softcap is not None:  # in the model dtype, as transformers
            logits = torch.tanh(logits / self.final_softcap) * self.final_softcap
        return logits.float()

    def _mlp(self, layer: Gemma3LayerWeights, x: torch.Tensor) -> torch.Tensor:
        return layer.down(self.ops.gelu_tanh_and_mul(layer.gate_up(x)))
