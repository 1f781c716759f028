"""The host models' feed-forward blocks: the dense gated MLP, and what every feed-forward block is
(:class:`FeedForward`: a decoder layer calls its block without knowing whether it is dense or a
mixture of experts, ``moe.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from tt_vllm_plugin.models.host.linear import HostLinear
from tt_vllm_plugin.models.host.ops import HostOps


class FeedForward(Protocol):
    def __call__(self, x: torch.Tensor, ops: HostOps) -> torch.Tensor:
        """The block's output (N, hidden) for normed hidden states ``x`` (N, hidden); ``ops`` are the
        model's elementwise kernels (fused or torch, chosen once per model)."""
        ...


@dataclass
class GatedMLP:
    """SwiGLU: ``down(silu(gate(x)) * up(x))``, gate and up packed into one matrix (gate rows first)."""

    gate_up: HostLinear
    down: HostLinear

    def __call__(self, x: torch.Tensor, ops: HostOps) -> torch.Tensor:
        return self.down(ops.silu_and_mul(self.gate_up(x)))
