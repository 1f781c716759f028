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
from tt_vllm_plugin.models.host.attention import PassAttention
from tt_vllm_plugin.models.host.decoder import HostDecoder
from tt_vllm_plugin.models.host.llama.weights import ModelWeights
from tt_vllm_plugin.models.host.ops import RotateFn
from tt_vllm_plugin.models.host.rope import rotary_embedding


def head_dim_of(config: Any) -> int:
    return int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)


class LlamaFamilyDecoder(HostDecoder):
    """The decoder's math over flat tokens (dimensions, weights, ops and attention: ``host/decoder.py``)."""

    weights: ModelWeights

    def __init__(
        self,
        config: Any,
        weights: ModelWeights,
        torch_device: torch.device,
        dtype: torch.dtype,
        max_seq_len: int,
    ) -> None:
        head_dim = head_dim_of(config)
        super().__init__(config, weights, torch_device, dtype, max_seq_len, head_dim, head_dim**-0.5)
        self.rope = rotary_embedding(config, self.head_dim, max_seq_len, dtype, torch_device, self.ops.fused)

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
            attn = self.attention_block(layer, x, rotate, attention, k_cache, v_cache, self.windows[index])
            x, residual = self.ops.add_rms_norm(attn, residual, layer.post_norm, self.eps)
            next_norm = layers[index + 1].input_norm if index + 1 < len(layers) else self.weights.norm
            x, residual = self.ops.add_rms_norm(layer.mlp(x, self.ops), residual, next_norm, self.eps)
        return x

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.weights.lm_head(hidden).float()
