"""The Llama-family decoder on the host: RMSNorm, RoPE, GQA attention, each layer's feed-forward block
(the SwiGLU MLP, ``host/mlp.py``, or a mixture of experts, ``host/moe.py``), in PyTorch.

Linear layers are :class:`~tt_vllm_plugin.models.host.linear.HostLinear` (vLLM's prepacked CPU GEMMs,
else ``F.linear``), with q/k/v and gate/up packed into one matrix each at load time
(``weights.py``). Between the matmuls, RMSNorm (fused with the residual add), RoPE and SwiGLU run
on vLLM's fused CPU kernels where they exist (``host/ops.py``), which agree with transformers' float32
numerics to about 1e-6. Attention runs on the backend chosen at load (``host/attention.py``), through
the attention object each pass hands :meth:`LlamaFamilyDecoder.forward`, with each layer's sliding
window (``host/sliding_window.py``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from tt_vllm_plugin.models.contract import KVCache
from tt_vllm_plugin.models.host.attention import HostAttention, PassAttention, choose_attention
from tt_vllm_plugin.models.host.llama.weights import LayerWeights, ModelWeights
from tt_vllm_plugin.models.host.ops import HostOps, RotateFn, fused_kernels_available, rms_norm
from tt_vllm_plugin.models.host.rope import rotary_embedding
from tt_vllm_plugin.models.host.sliding_window import (
    LayerWindows,
    effective_windows,
    windows_by_layer_type,
)


def head_dim_of(config: Any) -> int:
    return int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)


class LlamaFamilyDecoder:
    """The decoder's math over flat tokens: the model's dimensions, weights, elementwise ops and
    attention backend."""

    def __init__(
        self,
        config: Any,
        weights: ModelWeights,
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
        self.num_kv_heads = int(getattr(config, "num_key_value_heads", None) or self.num_heads)
        self.head_dim = head_dim_of(config)
        self.eps = float(config.rms_norm_eps)
        self.scale = self.head_dim**-0.5
        self.ops = HostOps(fused_kernels_available(torch_device))
        self.rope = rotary_embedding(config, self.head_dim, max_seq_len, dtype, torch_device, self.ops.fused)
        self.windows = effective_windows(self.layer_windows(config, len(weights.layers)), max_seq_len)
        # Chosen once here, confirmed for the cache's block size when the model allocates its KV cache.
        self.attention: HostAttention = choose_attention(
            torch_device, dtype, self.num_heads, self.num_kv_heads, self.head_dim, self.scale
        )

    @classmethod
    def layer_windows(cls, config: Any, num_layers: int) -> LayerWindows:
        """Each layer's sliding window, by ``layer_types`` (Qwen2 and Qwen3 in transformers); the
        architectures override it (``architectures.py``)."""
        return windows_by_layer_type(config, num_layers, cls.__name__)

    @property
    def vocab_size(self) -> int:
        return self.weights.lm_head.out_features

    def forward(
        self, ids: torch.Tensor, positions: torch.Tensor, kv_cache: KVCache, attention: PassAttention
    ) -> torch.Tensor:
        """Hidden states (N, hidden) after the final norm, for flat tokens ``ids`` at ``positions``.

        Each residual add is fused with the norm after it (the next sublayer's input norm, or the
        final norm after the last layer)."""
        return self.forward_embeddings(
            F.embedding(ids, self.weights.embed), self.rope.at(positions), kv_cache, attention
        )

    def forward_embeddings(
        self, embeddings: torch.Tensor, rotate: RotateFn, kv_cache: KVCache, attention: PassAttention
    ) -> torch.Tensor:
        """:meth:`forward` from the tokens' input embeddings and their rotation (a vision-language model
        puts image features among the embeddings and rotates by M-RoPE positions)."""
        layers = self.weights.layers
        residual = embeddings
        if not layers:
            return self.ops.rms_norm(residual, self.weights.norm, self.eps)
        x = self.ops.rms_norm(residual, layers[0].input_norm, self.eps)
        for index, layer in enumerate(layers):
            k_cache, v_cache = kv_cache[index]
            attn = self._attention(layer, x, rotate, attention, k_cache, v_cache, self.windows[index])
            x, residual = self.ops.add_rms_norm(attn, residual, layer.post_norm, self.eps)
            next_norm = layers[index + 1].input_norm if index + 1 < len(layers) else self.weights.norm
            x, residual = self.ops.add_rms_norm(layer.mlp(x, self.ops), residual, next_norm, self.eps)
        return x

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.weights.lm_head(hidden).float()

    def _attention(
        self,
        layer: LayerWeights,
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
        q, k = qkv[:, :q_size], qkv[:, q_size : q_size + kv_size]
        v = qkv[:, q_size + kv_size :].reshape(n, self.num_kv_heads, self.head_dim)
        if layer.q_norm is not None and layer.k_norm is not None:  # Qwen3: per-head norm before RoPE
            q = rms_norm(q.reshape(n, self.num_heads, -1), layer.q_norm, self.eps).reshape(n, -1)
            k = rms_norm(k.reshape(n, self.num_kv_heads, -1), layer.k_norm, self.eps).reshape(n, -1)
        q, k = rotate(q, k)
        q = q.reshape(n, self.num_heads, self.head_dim)
        k = k.reshape(n, self.num_kv_heads, self.head_dim)
        out = attention.attend(q, k, v, k_cache, v_cache, sliding_window=window, sinks=layer.sinks)
        return layer.o(out)
