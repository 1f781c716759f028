"""GPT-OSS's feed-forward blocks: every layer is a mixture of experts, read from transformers' layout.

The checkpoint keeps each layer's experts stacked and transposed (``x @ W``, not ``F.linear``):
``mlp.experts.gate_up_proj`` (E, hidden, 2 * inter) with gate and up *interleaved* along the last dim
(transformers' ``GptOssExperts._apply_gate``: ``gate_up[..., ::2]``, ``gate_up[..., 1::2]``),
``gate_up_proj_bias`` (E, 2 * inter), ``down_proj`` (E, inter, hidden), ``down_proj_bias`` (E, hidden);
the router is ``mlp.router`` with a bias. Loading turns them into ``host/moe.py``'s layout (``F.linear``
matrices, gate rows before up rows): the same numbers, reordered. Routing: the top-k router logits,
softmax over them. Activation: clamped SwiGLU with the config's ``swiglu_alpha`` / ``swiglu_limit``
(transformers' defaults 1.702 and 7.0 when absent, as in the released checkpoints' configs).

Only unquantised weights: the released checkpoints' MXFP4 experts (``gate_up_proj_blocks`` /
``_scales``) are refused before loading (``architectures.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from tt_vllm_plugin.models.host.llama.weights import take_linear
from tt_vllm_plugin.models.host.mlp import FeedForward
from tt_vllm_plugin.models.host.moe import ClampedSwiGLU, Experts, Routing, SparseMoE, stacked_experts

SWIGLU_ALPHA, SWIGLU_LIMIT = 1.702, 7.0  # transformers' GptOssConfig defaults
_EXPERT_TENSORS = ("gate_up_proj", "gate_up_proj_bias", "down_proj", "down_proj_bias")


def uninterleave(gate_up: torch.Tensor) -> torch.Tensor:
    """Interleaved gate/up columns (..., 2 * inter) -> gate columns, then up columns."""
    return torch.cat([gate_up[..., 0::2], gate_up[..., 1::2]], dim=-1)


def gpt_oss_experts(
    gate_up: torch.Tensor,
    gate_up_bias: torch.Tensor,
    down: torch.Tensor,
    down_bias: torch.Tensor,
    activation: ClampedSwiGLU,
) -> Experts:
    """``host/moe.py`` experts from transformers' stacked GPT-OSS tensors (see the module docstring)."""
    return stacked_experts(
        uninterleave(gate_up).transpose(1, 2).contiguous(),
        down.transpose(1, 2).contiguous(),
        uninterleave(gate_up_bias),
        down_bias,
        activation,
    )


@dataclass(frozen=True)
class GptOssMlpLoader:
    """The :class:`~tt_vllm_plugin.models.host.llama.weights.MlpLoader` of a GPT-OSS config."""

    routing: Routing
    activation: ClampedSwiGLU

    @classmethod
    def from_config(cls, config: Any) -> GptOssMlpLoader:
        alpha = getattr(config, "swiglu_alpha", None)
        limit = getattr(config, "swiglu_limit", None)
        return cls(
            routing=Routing(top_k=int(config.num_experts_per_tok), softmax_first=False),
            activation=ClampedSwiGLU(
                alpha=SWIGLU_ALPHA if alpha is None else float(alpha),
                limit=SWIGLU_LIMIT if limit is None else float(limit),
            ),
        )

    def tensor_names(self, index: int) -> list[str]:
        prefix = f"model.layers.{index}.mlp."
        return [prefix + "router.weight", prefix + "router.bias"] + [
            f"{prefix}experts.{name}" for name in _EXPERT_TENSORS
        ]

    def build(self, tensors: dict[str, torch.Tensor], index: int) -> FeedForward:
        prefix = f"model.layers.{index}.mlp."
        stacked = [tensors.pop(f"{prefix}experts.{name}") for name in _EXPERT_TENSORS]
        router = take_linear(tensors, prefix + "router", bias=True)
        return SparseMoE(router, gpt_oss_experts(*stacked, self.activation), self.routing)
