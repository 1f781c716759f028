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

The shared host layers do the rest: linear layers (``linear.py``), fused elementwise kernels (``ops.py``),
RoPE (``rope.py``), attention backends with per-layer windows (``attention.py``, ``sliding_window.py``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from tt_vllm_plugin.models.contract import KVCache
from tt_vllm_plugin.models.host.attention import HostAttention, PassAttention, choose_attention
from tt_vllm_plugin.models.host.gemma3.weights import Gemma3LayerWeights, Gemma3Weights
from tt_vllm_plugin.models.host.ops import HostOps, RotateFn, fused_kernels_available, rms_norm
from tt_vllm_plugin.models.host.rope import rotary_embedding
from tt_vllm_plugin.models.host.sliding_window import FULL, effective_windows, windows_by_layer_type


class Gemma3Decoder:
    """The decoder's math over flat tokens: dimensions, weights, ops, one RoPE per layer type and the
    attention backend."""

    def __init__(
        self,
        config: Any,
        weights: Gemma3Weights,
        torch_device: torch.device,
        dtype: torch.dtype,
        max_seq_len: int,
    ) -> None:
        self.config = config
        self.weights = weights
        self.device = torch_device
        self.dtype = dtype
        self.max_seq_len = max_seq_len
        self.num_heads = int(config.num_attention_heads)
        self.num_kv_heads = int(config.num_key_value_heads)
        self.head_dim = int(config.head_dim)
        self.eps = float(config.rms_norm_eps)
        # transformers keeps sqrt(hidden) as a float32 buffer and casts it to the weights' dtype.
        self.embed_scale = torch.tensor(config.hidden_size**0.5).to(dtype=dtype, device=torch_device)
        self.final_softcap = getattr(config, "final_logit_softcapping", None)
        self.ops = HostOps(fused_kernels_available(torch_device))
        num_layers = len(weights.layers)
        self.layer_types: list[str] = list(config.layer_types[:num_layers])
        self.windows = effective_windows(
            windows_by_layer_type(config, num_layers, type(self).__name__), max_seq_len
        )
        self.ropes = {
            kind: rotary_embedding(
                config, self.head_dim, max_seq_len, dtype, torch_device, self.ops.fused, layer_type=kind
            )
            for kind in sorted(set(self.layer_types) or {FULL})
        }
        # Chosen once here, confirmed for the cache's block size when the model allocates its KV cache.
        self.attention: HostAttention = choose_attention(
            torch_device,
            dtype,
            self.num_heads,
            self.num_kv_heads,
            self.head_dim,
            float(config.query_pre_attn_scalar) ** -0.5,
        )

    @property
    def vocab_size(self) -> int:
        return self.weights.lm_head.out_features

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
            attn = self._attention(layer, x, rotate, attention, k_cache, v_cache, self.windows[index])
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

    def _attention(
        self,
        layer: Gemma3LayerWeights,
        x: torch.Tensor,
        rotate: RotateFn,
        attention: PassAttention,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        window: int | None,
    ) -> torch.Tensor:
        n = x.shape[0]
        q_size, kv_size = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        qkv = layer.qkv(x)
        v = qkv[:, q_size + kv_size :].reshape(n, self.num_kv_heads, self.head_dim)
        # Per-head norms before RoPE; contiguous copies, so the rotation may work in place.
        q = rms_norm(qkv[:, :q_size].reshape(n, self.num_heads, -1), layer.q_norm, self.eps).reshape(n, -1)
        k = rms_norm(
            qkv[:, q_size : q_size + kv_size].reshape(n, self.num_kv_heads, -1), layer.k_norm, self.eps
        )
        q, k = rotate(q, k.reshape(n, -1))
        q = q.reshape(n, self.num_heads, self.head_dim)
        k = k.reshape(n, self.num_kv_heads, self.head_dim)
        return layer.o(attention.attend(q, k, v, k_cache, v_cache, sliding_window=window))

    def _mlp(self, layer: Gemma3LayerWeights, x: torch.Tensor) -> torch.Tensor:
        return layer.down(self.ops.gelu_tanh_and_mul(layer.gate_up(x)))
