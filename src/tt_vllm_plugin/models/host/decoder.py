"""What every host decoder family shares: its dimensions, weights, elementwise ops, per-layer sliding
windows and attention backend, and the attention sublayer over flat tokens.

The families (``llama/decoder.py``, ``gemma3/decoder.py``) add their own layer order, norms, MLP,
embeddings and logits on top of :class:`HostDecoder`.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from tt_vllm_plugin.models.host.attention import HostAttention, PassAttention, choose_attention
from tt_vllm_plugin.models.host.linear import HostLinear
from tt_vllm_plugin.models.host.ops import HostOps, RotateFn, fused_kernels_available, rms_norm
from tt_vllm_plugin.models.host.sliding_window import LayerWindows, effective_windows, windows_by_layer_type


class AttentionWeights(Protocol):
    """One layer's attention weights as :meth:`HostDecoder.attention_block` reads them."""

    qkv: HostLinear  # q, k, v projections stacked on the output dim
    o: HostLinear
    q_norm: torch.Tensor | None  # per-head RMSNorm before RoPE (Qwen3, Gemma 3), else None
    k_norm: torch.Tensor | None
    sinks: torch.Tensor | None  # (heads,) attention sinks (GPT-OSS), else None


class HostDecoder:
    """The decoder's shared state: dimensions, weights, elementwise ops, windows and attention backend."""

    def __init__(
        self,
        config: Any,
        weights: Any,
        torch_device: torch.device,
        dtype: torch.dtype,
        max_seq_len: int,
        head_dim: int,
        scale: float,
    ) -> None:
        self.config = config
        self.weights = weights
        self.device = torch_device
        self.dtype = dtype
        self.max_seq_len = max_seq_len
        self.num_heads = int(config.num_attention_heads)
        self.num_kv_heads = int(getattr(config, "num_key_value_heads", None) or self.num_heads)
        self.head_dim = head_dim
        self.eps = float(config.rms_norm_eps)
        self.scale = scale
        self.ops = HostOps(fused_kernels_available(torch_device))
        self.windows = effective_windows(self.layer_windows(config, len(weights.layers)), max_seq_len)
        # Chosen once here, confirmed for the cache's block size when the model allocates its KV cache.
        self.attention: HostAttention = choose_attention(
            torch_device, dtype, self.num_heads, self.num_kv_heads, self.head_dim, scale
        )

    @classmethod
    def layer_windows(cls, config: Any, num_layers: int) -> LayerWindows:
        """Each layer's sliding window, by ``layer_types`` (Qwen2, Qwen3 and Gemma 3 in transformers);
        the architectures that say it otherwise override it (``llama/architectures.py``)."""
        return windows_by_layer_type(config, num_layers, cls.__name__)

    @property
    def vocab_size(self) -> int:
        return self.weights.lm_head.out_features

    def attention_block(
        self,
        layer: AttentionWeights,
        x: torch.Tensor,
        rotate: RotateFn,
        attention: PassAttention,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        window: int | None,
    ) -> torch.Tensor:
        """The layer's attention output (N, hidden) for its normed input ``x`` (N, hidden): fused qkv,
        per-head q/k norms when the layer has them, RoPE, paged attention inside ``window``, o."""
        n = x.shape[0]
        q_size, kv_size = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        qkv = layer.qkv(x)
        q, k = qkv[:, :q_size], qkv[:, q_size : q_size + kv_size]
        v = qkv[:, q_size + kv_size :].reshape(n, self.num_kv_heads, self.head_dim)
        if layer.q_norm is not None and layer.k_norm is not None:
            # Contiguous copies, so the rotation may work in place.
            q = rms_norm(q.reshape(n, self.num_heads, -1), layer.q_norm, self.eps).reshape(n, -1)
            k = rms_norm(k.reshape(n, self.num_kv_heads, -1), layer.k_norm, self.eps).reshape(n, -1)
        q, k = rotate(q, k)
        q = q.reshape(n, self.num_heads, self.head_dim)
        k = k.reshape(n, self.num_kv_heads, self.head_dim)
        out = attention.attend(q, k, v, k_cache, v_cache, sliding_window=window, sinks=layer.sinks)
        return layer.o(out)
