"""Qwen3-MoE's feed-forward blocks: which layers are sparse, and the tensors of their router and experts.

As transformers' ``Qwen3MoeDecoderLayer``: layer ``i`` is a mixture of experts when ``i`` is not in
``mlp_only_layers``, ``num_experts > 0`` and ``(i + 1) % decoder_sparse_step == 0``; the others are the
dense MLP of ``intermediate_size``. Checkpoints (the Hub's, and what transformers 5 saves) keep one
``mlp.experts.<e>.{gate,up,down}_proj.weight`` per expert; the loader packs gate and up
(``PACKED_MODULES``) as for the dense MLP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from tt_vllm_plugin.models.host.llama.weights import DenseMlpLoader, take_linear
from tt_vllm_plugin.models.host.mlp import FeedForward
from tt_vllm_plugin.models.host.moe import Routing, SparseMoE, stacked_experts


@dataclass(frozen=True)
class Qwen3MoeMlpLoader:
    """The :class:`~tt_vllm_plugin.models.host.llama.weights.MlpLoader` of a Qwen3-MoE config."""

    num_experts: int
    routing: Routing
    decoder_sparse_step: int
    mlp_only_layers: frozenset[int]

    @classmethod
    def from_config(cls, config: Any) -> Qwen3MoeMlpLoader:
        return cls(
            num_experts=int(config.num_experts),
            routing=Routing(
                top_k=int(config.num_experts_per_tok),
                softmax_first=True,
                renormalize=bool(config.norm_topk_prob),
            ),
            decoder_sparse_step=int(getattr(config, "decoder_sparse_step", 1) or 1),
            mlp_only_layers=frozenset(getattr(config, "mlp_only_layers", None) or ()),
        )

    def is_sparse(self, index: int) -> bool:
        return (
            index not in self.mlp_only_layers
            and self.num_experts > 0
            and (index + 1) % self.decoder_sparse_step == 0
        )

    def tensor_names(self, index: int) -> list[str]:
        if not self.is_sparse(index):
            return DenseMlpLoader().tensor_names(index)
        prefix = f"model.layers.{index}.mlp."
        names = [prefix + "gate.weight"]
        for expert in range(self.num_experts):
            names += [f"{prefix}experts.{expert}.{p}_proj.weight" for p in ("gate", "up", "down")]
        return names

    def build(self, tensors: dict[str, torch.Tensor], index: int) -> FeedForward:
        if not self.is_sparse(index):
            return DenseMlpLoader().build(tensors, index)
        prefix = f"model.layers.{index}.mlp."

        def stack(module: str) -> torch.Tensor:
            names = [f"{prefix}experts.{e}.{module}.weight" for e in range(self.num_experts)]
            return torch.stack([tensors.pop(name) for name in names])

        experts = stacked_experts(stack("gate_up_proj"), stack("down_proj"))
        return SparseMoE(take_linear(tensors, prefix + "gate", bias=False), experts, self.routing)
