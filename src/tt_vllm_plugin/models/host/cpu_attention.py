"""Paged attention of the host models on vLLM's own CPU attention kernels.

vLLM's CPU build ships the kernels its CPU platform attends with (``cpu_attn_reshape_and_cache``,
``cpu_attention_with_kv_cache``): one call per layer for a whole ragged batch (prefills with or
without a cached prefix, and decodes), reading K/V straight out of the paged cache through the page
table. They take the contract's cache shape, ``(num_blocks, num_kv_heads, block_size, head_dim)``
for K and for V, but store K inside a block in their own order, so a model that writes its cache
with them must also read it with them: the choice is made once per model and cache
(``attention.py``), and :mod:`~tt_vllm_plugin.models.host.paged_attention` (plain
torch) serves every other case (a CUDA host device, head sizes or dtypes the kernels do not take, a
vLLM without its CPU build).

Measured (benchmarks/host_decode_step.py, SmolLM2-135M, 2 cores): the kernels replace a gather of
every row's K/V per layer and per step, and the Python loop over prefill rows.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from tt_vllm_plugin import envs
from tt_vllm_plugin.compat import has_vllm_cpu_op, vllm_cpu_ops
from tt_vllm_plugin.models.host.bidirectional import Spans
from tt_vllm_plugin.models.host.paged_attention import prefill_attention

_KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_KERNEL_OPS = ("cpu_attn_reshape_and_cache", "cpu_attention_with_kv_cache", "get_scheduler_metadata")


def vllm_cpu_attention_available(device: torch.device, dtype: torch.dtype, head_dim: int) -> bool:
    """Whether the kernels run here for this device, dtype and head size."""
    if device.type != "cpu" or dtype not in _KERNEL_DTYPES:
        return False
    if not all(has_vllm_cpu_op(op) for op in _KERNEL_OPS):
        return False
    return head_dim in _supported_head_sizes()


@functools.cache
def _supported_head_sizes() -> tuple[int, ...]:
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    return tuple(CPUAttentionBackend.get_supported_head_sizes())


@functools.cache
def _isa(dtype: torch.dtype, block_size: int, head_dim: int) -> str:
    """The kernel variant vLLM's CPU platform would pick (AMX, AVX-512/AVX2 "vec", "vec16", ...)."""
    from vllm.v1.attention.backends.cpu_attn import _get_attn_isa

    return _get_attn_isa(dtype, block_size, head_dim)


@dataclass(frozen=True)
class KernelBatch:
    """One forward pass's attention metadata, shared by every layer.

    Request ``i`` has ``query_start_loc[i+1] - query_start_loc[i]`` new tokens, which are its last
    positions up to ``seq_lens[i]`` (causal, aligned to the end: a cached prefix comes first). The
    kernels' scheduler metadata depends on the sliding window (it plans which KV blocks each query
    reads), so it is built once per window the pass's layers use (``sliding_window.py``).
    """

    query_start_loc: torch.Tensor  # (R + 1,) int32
    seq_lens: torch.Tensor  # (R,) int32
    block_table: torch.Tensor  # (R, max_blocks) int32
    slot_mapping: torch.Tensor  # (N,) int64: block * block_size + offset of each new token
    num_heads: int
    num_kv_heads: int
    head_dim: int
    dtype: torch.dtype
    isa: str
    scale: float
    # Per row, image blocks attended bidirectionally (``bidirectional.py``): those rows are redone in torch.
    bidirectional: tuple[Spans, ...] | None = None
    # Sliding window (-1: none) -> scheduler metadata, built on first use.
    _metadata: dict[int, torch.Tensor] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        *,
        new_lens: Sequence[int],
        seq_lens: Sequence[int],
        page_table: torch.Tensor,
        slot_mapping: torch.Tensor,
        num_heads: int,
        num_kv_heads: int,
        head_dim: int,
        block_size: int,
        dtype: torch.dtype,
        scale: float,
        bidirectional: tuple[Spans, ...] | None = None,
    ) -> KernelBatch:
        query_start_loc = torch.zeros(len(new_lens) + 1, dtype=torch.int32)
        query_start_loc[1:] = torch.tensor(list(new_lens), dtype=torch.int32).cumsum(0)
        return cls(
            query_start_loc=query_start_loc,
            seq_lens=torch.tensor(list(seq_lens), dtype=torch.int32),
            block_table=page_table.to(dtype=torch.int32).contiguous(),
            slot_mapping=slot_mapping.long(),
            num_heads=num_heads,
            num_kv_heads=num_kv_heads,
            head_dim=head_dim,
            dtype=dtype,
            isa=_isa(dtype, block_size, head_dim),
            scale=scale,
            bidirectional=bidirectional,
        )

    def scheduler_metadata(self, window: int) -> torch.Tensor:
        """The kernels' work plan for this pass with sliding window ``window`` (-1: none)."""
        metadata = self._metadata.get(window)
        if metadata is None:
            metadata = vllm_cpu_ops().cpu_attn_get_scheduler_metadata(
                num_reqs=len(self.seq_lens),
                num_heads=self.num_heads,
                num_kv_heads=self.num_kv_heads,
                head_dim=self.head_dim,
                seq_lens=self.seq_lens,
                dtype=self.dtype,
                query_start_loc=self.query_start_loc,
                causal=True,
                sliding_window_size=window,
                isa=self.isa,
                enable_kv_split=False,
            )
            self._metadata[window] = metadata
        return metadata

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        sliding_window: int | None = None,
        sinks: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Write the new tokens' ``k``/``v`` (N, kv_heads, head_dim) into the cache, then attend
        ``q`` (N, heads, head_dim) to each request's cached and new tokens, inside ``sliding_window``
        when given (the kernels' window means what transformers' does), with attention ``sinks``
        (heads,) when given (``sinks.py``). Returns (N, heads * head_dim)."""
        ops = vllm_cpu_ops()
        window = -1 if sliding_window is None else int(sliding_window)
        ops.cpu_attn_reshape_and_cache(
            k.to(k_cache.dtype), v.to(v_cache.dtype), k_cache, v_cache, self.slot_mapping, self.isa
        )
        query = q.to(k_cache.dtype).contiguous()
        out = torch.empty_like(query)
        ops.cpu_attention_with_kv_cache(
            query=query,
            key_cache=k_cache,
            value_cache=v_cache,
            output=out,
            query_start_loc=self.query_start_loc,
            seq_lens=self.seq_lens,
            scale=self.scale,
            causal=True,
            alibi_slopes=None,
            sliding_window=window,
            block_table=self.block_table,
            softcap=0.0,
            scheduler_metadata=self.scheduler_metadata(window),
            # As vLLM's CPU backend: float32 sinks (the kernels also take bfloat16 ones).
            s_aux=None if sinks is None else sinks.to(torch.float32).contiguous(),
        )
        out = out.to(q.dtype).reshape(q.shape[0], -1)
        if self.bidirectional is not None:
            starts = (self.seq_lens - self.query_start_loc.diff()).tolist()
            rows_from_new_tokens(
                out, q, k, v, self.query_start_loc.tolist(), starts, self.bidirectional, self.scale,
                sliding_window, sinks,
            )  # fmt: skip
        return out


# The kernels' block alignment: 16 for their "vec16" variant, which vLLM picks for block sizes that
# are not multiples of 32 (the others need 32, and get it, since they are picked only then).
_KERNEL_BLOCK_ALIGNMENT = 16

HOST_ATTENTION_ENV = envs.TT_VLLM_HOST_ATTENTION.name  # auto (default) | torch: force the plain-torch path


def host_attention_choice(device: torch.device, dtype: torch.dtype, head_dim: int) -> str:
    """ "vllm" (the kernels) or "torch" for a host model; ``TT_VLLM_HOST_ATTENTION=torch`` forces torch
    (A/B benchmarks, and tests that compare the two)."""
    wanted = os.environ.get(HOST_ATTENTION_ENV, "auto").strip().lower()
    if wanted not in ("auto", "torch"):
        raise ValueError(f"{HOST_ATTENTION_ENV}={wanted!r}: expected 'auto' or 'torch'.")
    if wanted == "torch" or not vllm_cpu_attention_available(device, dtype, head_dim):
        return "torch"
    return "vllm"


def kernel_block_size_ok(block_size: int) -> bool:
    """Whether the kernels take caches with this block size (the host default, 16, is fine)."""
    return block_size % _KERNEL_BLOCK_ALIGNMENT == 0


def rows_from_new_tokens(
    out: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    query_start_loc: Sequence[int],
    starts: Sequence[int],
    spans_by_row: Sequence[Spans],
    scale: float,
    window: int | None,
    sinks: torch.Tensor | None,
) -> None:
    """Overwrite, in ``out`` (N, heads * head_dim), the attention of every row that has image blocks
    (``bidirectional.py``: the kernels have no such mask), computed in torch from the row's own new
    ``k``/``v``. Such a row must have no cached prefix."""
    for row, spans in enumerate(spans_by_row):
        if not spans:
            continue
        if starts[row] != 0:
            raise NotImplementedError(
                f"prefill row {row} has image tokens after a cached prefix of {starts[row]} tokens: "
                "vLLM's CPU attention kernels cannot attend bidirectionally inside an image over a cached "
                "prefix (set TT_VLLM_HOST_ATTENTION=torch)."
            )
        lo, hi = int(query_start_loc[row]), int(query_start_loc[row + 1])
        row_out = prefill_attention(
            q[lo:hi], k[lo:hi], v[lo:hi], None, None, None, [0], [hi - lo], scale, window, sinks, [spans]
        )
        out[lo:hi] = row_out.to(out.dtype)
