"""The Llama family on the host device, one class per Hugging Face architecture.

One core, :class:`~tt_vllm_plugin.models.host.llama.model.HostLlamaFamilyModel`, covers Llama, Mistral,
Qwen2 and Qwen3: they share the decoder (RMSNorm, RoPE, GQA attention, SwiGLU MLP) and differ only in
biases, Qwen3's per-head q/k norm, which layers have a sliding window and which configs they accept.
The classes here say which; the registry names them (``models/registry.py``).

Where the rest lives: ``model.py`` (the contract hooks: loading, KV cache, prefill, decode),
``decoder.py`` (the math), ``weights.py`` and ``host/checkpoint.py`` (loading and packing the weights),
``host/rope.py`` (RoPE settings), ``host/attention.py`` (attention backends), ``host/sliding_window.py``
(windows), ``host/contract_hooks.py`` (the contract hooks every host family shares),
``models/device_sampling.py`` (sampling on the device).
"""

from __future__ import annotations

from typing import Any

from tt_vllm_plugin.models.host.llama.model import HostLlamaFamilyModel
from tt_vllm_plugin.models.host.llama.weights import FamilyLayout
from tt_vllm_plugin.models.host.sliding_window import FULL, LayerWindows, uniform_windows


class TTLlamaForCausalLM(HostLlamaFamilyModel):
    """Llama (1/2/3.x), and anything saved as LlamaForCausalLM (e.g. SmolLM2)."""

    @classmethod
    def layer_windows(cls, config: Any, num_layers: int) -> LayerWindows:
        # transformers' Llama has no sliding window: a config asking for one is refused as ambiguous
        # rather than silently computed with full attention.
        layer_types = getattr(config, "layer_types", None) or []
        other = sorted({kind for kind in layer_types if kind != FULL})
        if other or getattr(config, "use_sliding_window", False):
            kinds = ", ".join(other) or "use_sliding_window"
            raise NotImplementedError(
                f"{cls.__name__}: sliding-window attention layers ({kinds}) are not part of this "
                "architecture in transformers; refused rather than computed with full attention."
            )
        return [None] * num_layers


class TTMistralForCausalLM(HostLlamaFamilyModel):
    """Mistral: Llama math with ``sliding_window`` on every layer (transformers' Mistral)."""

    @classmethod
    def family_layout(cls, config: Any) -> FamilyLayout:
        return FamilyLayout()

    @classmethod
    def layer_windows(cls, config: Any, num_layers: int) -> LayerWindows:
        # transformers' Mistral windows every layer and ignores layer_types (it warns to use Ministral);
        # a checkpoint mixing layer types is refused rather than guessed.
        kinds = set(getattr(config, "layer_types", None) or [])
        if len(kinds) > 1:
            raise NotImplementedError(
                f"{cls.__name__}: layer_types mixing {', '.join(sorted(kinds))} is ignored by transformers' "
                "Mistral (every layer gets sliding_window); refused as ambiguous."
            )
        return uniform_windows(config, num_layers)


class TTQwen2ForCausalLM(HostLlamaFamilyModel):
    """Qwen2 / Qwen2.5: q/k/v projections always carry a bias, o_proj never does; sliding windows on
    the ``layer_types`` layers (``use_sliding_window``: layers from ``max_window_layers`` on)."""

    @classmethod
    def family_layout(cls, config: Any) -> FamilyLayout:
        return FamilyLayout(qkv_bias=True)


class TTQwen3ForCausalLM(HostLlamaFamilyModel):
    """Qwen3 (dense): per-head RMSNorm on q and k before RoPE; biases only if attention_bias; sliding
    windows on the ``layer_types`` layers, as Qwen2."""

    @classmethod
    def family_layout(cls, config: Any) -> FamilyLayout:
        attention_bias = bool(getattr(config, "attention_bias", False))
        return FamilyLayout(qkv_bias=attention_bias, o_bias=attention_bias, qk_norm=True)
