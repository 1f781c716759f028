"""The host models' attention: one backend per model, one attention object per forward pass.

Two backends: vLLM's CPU attention kernels (``cpu_attention.py``) and plain torch
(``paged_attention.py``). They store K differently inside a cache block, so a cache must be read by the
backend that wrote it. The model therefore chooses once, when it is loaded (device, dtype, head size,
``TT_VLLM_HOST_ATTENTION``: :func:`~tt_vllm_plugin.models.host.cpu_attention.host_attention_choice`), and
confirms the choice once more when it allocates its KV cache, the first moment the block size is known
(the kernels take multiples of 16 only; any other size keeps the cache on torch for its life).

Each forward pass describes where its new tokens sit in the paged cache
(:class:`~tt_vllm_plugin.models.host.paged_attention.PassContext`) and gets
one attention object for it from the backend (:class:`~tt_vllm_plugin.models.host.cpu_attention.KernelBatch`
or :class:`~tt_vllm_plugin.models.host.paged_attention.TorchBatch`); every layer calls its
``attend(q, k, v, k_cache, v_cache, sliding_window, sinks)``, with its own window (None: full causal
attention; ``sliding_window.py``), so one pass can mix sliding and full layers, and its attention sinks
if it has them (``sinks.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from tt_vllm_plugin.models.host.cpu_attention import KernelBatch, host_attention_choice, kernel_block_size_ok
from tt_vllm_plugin.models.host.paged_attention import PassContext, TorchBatch


class PassAttention(Protocol):
    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        sliding_window: int | None = None,
        sinks: torch.Tensor | None = None,
    ) -> torch.Tensor: ...


@dataclass(frozen=True)
class TorchAttention:
    """The plain-torch backend: gathers each row's K/V and attends with SDPA."""

    scale: float
    name = "torch"

    def for_block_size(self, block_size: int) -> HostAttention:
        return self

    def for_pass(self, ctx: PassContext) -> PassAttention:
        return TorchBatch(ctx, self.scale)


@dataclass(frozen=True)
class KernelAttention:
    """vLLM's CPU attention kernels: one metadata build per pass, one kernel call per layer."""

    num_heads: int
    num_kv_heads: int
    head_dim: int
    scale: float
    name = "vllm"

    def for_block_size(self, block_size: int) -> HostAttention:
        return self if kernel_block_size_ok(block_size) else TorchAttention(self.scale)

    def for_pass(self, ctx: PassContext) -> PassAttention:
        return KernelBatch.build(
            new_lens=ctx.new_lens,
            seq_lens=ctx.seq_lens,
            page_table=ctx.page_table,
            slot_mapping=ctx.blocks * ctx.block_size + ctx.offsets,
            num_heads=self.num_heads,
            num_kv_heads=self.num_kv_heads,
            head_dim=self.head_dim,
            block_size=ctx.block_size,
            dtype=ctx.cache_dtype,
            scale=self.scale,
            bidirectional=ctx.bidirectional,
        )


HostAttention = TorchAttention | KernelAttention


def choose_attention(
    device: torch.device, dtype: torch.dtype, num_heads: int, num_kv_heads: int, head_dim: int, scale: float
) -> HostAttention:
    """The backend of a model computing in ``dtype`` on ``device`` (see the module docstring)."""
    if host_attention_choice(device, dtype, head_dim) == "vllm":
        return KernelAttention(num_heads, num_kv_heads, head_dim, scale)
    return TorchAttention(scale)
