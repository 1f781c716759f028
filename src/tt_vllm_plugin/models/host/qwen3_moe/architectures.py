"""Qwen3-MoE (``Qwen3MoeForCausalLM``) on the host device.

The Llama-family model (``host/llama/``) with Qwen3's attention (per-head RMSNorm on q and k before
RoPE, biases only with ``attention_bias``) and, per layer, the dense MLP or a mixture of experts
(``weights.py``: ``decoder_sparse_step``, ``mlp_only_layers``; routing: softmax over the experts,
top-k, renormalised when ``norm_topk_prob``). Sliding window: transformers' Qwen3MoeModel has no
``layer_types``; with ``use_sliding_window`` its config keeps ``sliding_window`` and every layer is
windowed (otherwise the config sets it to None). Everything else (loading, the contract hooks,
attention backends) is the Llama family's.
"""

from __future__ import annotations

from typing import Any

from tt_vllm_plugin.models.host.llama.model import HostLlamaFamilyModel
from tt_vllm_plugin.models.host.llama.weights import FamilyLayout, MlpLoader
from tt_vllm_plugin.models.host.qwen3_moe.weights import Qwen3MoeMlpLoader
from tt_vllm_plugin.models.host.sliding_window import LayerWindows, uniform_windows


class TTQwen3MoeForCausalLM(HostLlamaFamilyModel):
    """Qwen3-MoE (e.g. Qwen3-30B-A3B)."""

    @classmethod
    def family_layout(cls, config: Any) -> FamilyLayout:
        attention_bias = bool(getattr(config, "attention_bias", False))
        return FamilyLayout(qkv_bias=attention_bias, o_bias=attention_bias, qk_norm=True)

    @classmethod
    def mlp_loader(cls, config: Any) -> MlpLoader | None:
        return Qwen3MoeMlpLoader.from_config(config)

    @classmethod
    def layer_windows(cls, config: Any, num_layers: int) -> LayerWindows:
        return uniform_windows(config, num_layers)
