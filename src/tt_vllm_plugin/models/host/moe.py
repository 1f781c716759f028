"""Mixture of experts for the host models: a router picks ``top_k`` experts per token, each expert is a
gated MLP, and the token's output is the routing-weighted sum of its experts' outputs.

The reference is transformers' *eager* experts (``experts_implementation="eager"``; transformers 5
defaults to ``grouped_mm`` where it can, which sums in another order): the same routing arithmetic
here, and in :class:`TorchExperts` the experts visited in ascending order, each adding its weighted rows
into a zeroed output with ``index_add_``, so a token's expert outputs are summed in the same order. Two
routings exist:

- **softmax, then top-k** (Qwen3-MoE, Mixtral): softmax over every expert's logit in float32, the
  top-k probabilities, renormalised to sum to one when the config says so (``norm_topk_prob``);
- **top-k, then softmax** (GPT-OSS): the top-k logits (the router has a bias), softmax over those.

Expert activations: SwiGLU (``silu(gate) * up``, vLLM's fused kernel where the model uses it) or
GPT-OSS's clamped SwiGLU (:class:`ClampedSwiGLU`). The experts run on vLLM's CPU fused-MoE kernel
where it computes the same thing (``fused_moe.py``: float32 rounding of sums in its own order, about 1e-7
of the output), else as :class:`TorchExperts` (transformers' eager order): each expert's two matrices a
:class:`~tt_vllm_plugin.models.host.linear.HostLinear` (vLLM's prepacked CPU GEMMs where they run), gate
rows before up rows, as the dense MLP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from tt_vllm_plugin.models.host.fused_moe import FusedExperts, fused_moe_applies
from tt_vllm_plugin.models.host.linear import HostLinear
from tt_vllm_plugin.models.host.ops import HostOps


@dataclass(frozen=True)
class Routing:
    """How router logits become each token's experts and their weights."""

    top_k: int
    softmax_first: bool  # softmax over all experts then top-k (Qwen3-MoE); else top-k then softmax (GPT-OSS)
    renormalize: bool = False  # the top-k probabilities divided by their sum (norm_topk_prob)

    def __post_init__(self) -> None:
        if self.renormalize and not self.softmax_first:
            raise ValueError("Routing: renormalize applies to softmax-first routing only.")

    def select(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(weights (N, top_k) in ``logits.dtype``, expert ids (N, top_k)) for router logits (N, E)."""
        if self.softmax_first:
            probs = F.softmax(logits, dim=-1, dtype=torch.float32)
            weights, ids = torch.topk(probs, self.top_k, dim=-1)
            if self.renormalize:
                weights = weights / weights.sum(dim=-1, keepdim=True)
            return weights.to(logits.dtype), ids
        top, ids = torch.topk(logits, self.top_k, dim=-1)
        return F.softmax(top, dim=1, dtype=top.dtype), ids


@dataclass(frozen=True)
class ClampedSwiGLU:
    """GPT-OSS's expert activation: gate clamped from above, up from both sides by ``limit``, then
    ``(up + 1) * gate * sigmoid(alpha * gate)`` (transformers' ``GptOssExperts._apply_gate``)."""

    alpha: float
    limit: float

    def __call__(self, gate_up: torch.Tensor) -> torch.Tensor:
        gate, up = gate_up.chunk(2, dim=-1)
        gate = gate.clamp(min=None, max=self.limit)
        up = up.clamp(min=-self.limit, max=self.limit)
        return (up + 1) * (gate * torch.sigmoid(gate * self.alpha))


@dataclass
class Expert:
    gate_up: HostLinear  # gate rows, then up rows
    down: HostLinear


class Experts(Protocol):
    def __call__(
        self, x: torch.Tensor, weights: torch.Tensor, ids: torch.Tensor, ops: HostOps
    ) -> torch.Tensor:
        """The routing-weighted sum (N, hidden) of each token's experts ``ids`` (N, top_k)."""
        ...


@dataclass
class TorchExperts:
    """The experts in plain torch, in transformers' eager order (see the module docstring)."""

    experts: list[Expert]
    clamped: ClampedSwiGLU | None = None  # None: plain SwiGLU

    def __call__(
        self, x: torch.Tensor, weights: torch.Tensor, ids: torch.Tensor, ops: HostOps
    ) -> torch.Tensor:
        out = torch.zeros_like(x)
        # Tokens grouped by expert with one sort: flat slot j is (token j // top_k, rank j % top_k).
        flat, flat_weights = ids.reshape(-1), weights.reshape(-1)
        order = torch.argsort(flat, stable=True)
        counts = torch.bincount(flat, minlength=len(self.experts)).tolist()
        top_k = ids.shape[1]
        start = 0
        for index, count in enumerate(counts):
            if count == 0:
                continue
            slots = order[start : start + count]
            start += count
            tokens = slots // top_k
            expert = self.experts[index]
            hidden = self._activate(expert.gate_up(x[tokens]), ops)
            weighted = expert.down(hidden) * flat_weights[slots, None]
            out.index_add_(0, tokens, weighted.to(out.dtype))
        return out

    def _activate(self, gate_up: torch.Tensor, ops: HostOps) -> torch.Tensor:
        if self.clamped is not None:
            return self.clamped(gate_up)
        return ops.silu_and_mul(gate_up)


@dataclass
class SparseMoE:
    """One layer's mixture of experts (a :class:`~tt_vllm_plugin.models.host.mlp.FeedForward`)."""

    router: HostLinear  # (num_experts, hidden), with a bias for GPT-OSS
    experts: Experts
    routing: Routing

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(routing weights (N, top_k), expert ids (N, top_k)) of hidden states ``x`` (N, hidden)."""
        return self.routing.select(self.router(x))

    def __call__(self, x: torch.Tensor, ops: HostOps) -> torch.Tensor:
        weights, ids = self.route(x)
        return self.experts(x, weights, ids, ops)


def experts_from_stacked(
    gate_up: torch.Tensor,
    down: torch.Tensor,
    gate_up_bias: torch.Tensor | None = None,
    down_bias: torch.Tensor | None = None,
) -> list[Expert]:
    """Experts from stacked matrices in ``F.linear`` layout: ``gate_up`` (E, 2 * inter, hidden) with
    gate rows first, ``down`` (E, hidden, inter), biases (E, 2 * inter) and (E, hidden)."""
    return [
        Expert(
            HostLinear(gate_up[e], None if gate_up_bias is None else gate_up_bias[e], keep_weight=False),
            HostLinear(down[e], None if down_bias is None else down_bias[e], keep_weight=False),
        )
        for e in range(gate_up.shape[0])
    ]


def stacked_experts(
    gate_up: torch.Tensor,
    down: torch.Tensor,
    gate_up_bias: torch.Tensor | None = None,
    down_bias: torch.Tensor | None = None,
    clamped: ClampedSwiGLU | None = None,
) -> Experts:
    """A layer's experts from stacked matrices (:func:`experts_from_stacked`'s layout): on vLLM's fused
    CPU kernel where it computes the same thing (``fused_moe.py``), else :class:`TorchExperts`."""
    hidden, intermediate = down.shape[1], down.shape[2]
    clamp = None if clamped is None else (clamped.alpha, clamped.limit)
    if fused_moe_applies(gate_up.device, gate_up.dtype, hidden, intermediate, clamp):
        return FusedExperts.build(gate_up, down, gate_up_bias, down_bias, clamped is not None)
    return TorchExperts(experts_from_stacked(gate_up, down, gate_up_bias, down_bias), clamped)
