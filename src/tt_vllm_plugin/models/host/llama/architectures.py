"""The Llama family on the host device, one class per Hugging Face architecture.

One core, :class:`~tt_vllm_plugin.models.host.llama.model.HostLlamaFamilyModel`, covers Llama, Mistral,
Qwen2 and Qwen3: they share the decoder (RMSNorm, RoPE, GQA attention, SwiGLU MLP) and differ only in
biases, Qwen3's per-head q/k norm and which configs they accept. The classes here say which; the
registry names them (``models/registry.py``).

Where the rest lives: ``model.py`` (loading) on ``host/paged_model.py`` (the contract hooks: KV cache,
prefill, decode), ``decoder.py`` (the math), ``weights.py`` and ``host/checkpoint.py`` (loading and
packing the weights), ``host/rope.py`` (RoPE settings), ``host/attention.py`` (attention backends),
``models/device_sampling.py`` (sampling on the device).
"""

from __future__ import annotations

from typing import Any

from tt_vllm_plugin.models.host.llama.model import HostLlamaFamilyModel
from tt_vllm_plugin.models.host.llama.weights import FamilyLayout


class TTLlamaForCausalLM(HostLlamaFamilyModel):
    """Llama (1/2/3.x), and anything saved as LlamaForCausalLM (e.g. SmolLM2)."""


class TTMistralForCausalLM(HostLlamaFamilyModel):
    """Mistral: Llama math, plus a sliding window this implementation does not do."""

    @classmethod
    def family_layout(cls, config: Any) -> FamilyLayout:
        return FamilyLayout()

    @classmethod
    def check_config(cls, config: Any, max_seq_len: int) -> None:
        super().check_config(config, max_seq_len)
        window = getattr(config, "sliding_window", None)
        # A window at least max_seq_len long never takes effect, so plain causal attention is exact.
        if window is not None and window < max_seq_len:
            raise NotImplementedError(
                f"{cls.__name__}: sliding_window={window} < max_seq_len={max_seq_len} is not implemented "
                f"for host models; use max_seq_len <= {window}."
            )


class TTQwen2ForCausalLM(HostLlamaFamilyModel):
    """Qwen2 / Qwen2.5: q/k/v projections always carry a bias, o_proj never does."""

    @classmethod
    def family_layout(cls, config: Any) -> FamilyLayout:
        return FamilyLayout(qkv_bias=True)


class TTQwen3ForCausalLM(HostLlamaFamilyModel):
    """Qwen3 (dense): per-head RMSNorm on q and k before RoPE; biases only if attention_bias."""

    @classmethod
    def family_layout(cls, config: Any) -> FamilyLayout:
        attention_bias = bool(getattr(config, "attention_bias", False))
        return FamilyLayout(qkv_bias=attention_bias, o_bias=attention_bias, qk_norm=True)
