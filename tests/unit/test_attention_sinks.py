"""Attention sinks (models/host/sinks.py) in both attention backends against transformers' own GPT-OSS
eager attention (``modeling_gpt_oss.eager_attention_forward``, which appends the sink column), on a paged
cache: fresh prefill, a cached prefix, chunks and decode, with and without a sliding window."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from tests.contract.helpers import BlockPool
from tt_vllm_plugin.models.host.cpu_attention import KernelBatch, vllm_cpu_attention_available
from tt_vllm_plugin.models.host.paged_attention import PassContext, TorchBatch
from tt_vllm_plugin.models.host.sliding_window import window_mask

CPU = torch.device("cpu")
HEADS, KV_HEADS, HEAD_DIM, BLOCK, NUM_BLOCKS = 4, 2, 32, 16, 32
SCALE = HEAD_DIM**-0.5
# Large sinks too: a head that puts most of its weight on the sink.
SINKS = torch.tensor([-1.5, 0.0, 2.0, 6.0])
WINDOWS = [None, 5, 16]


def transformers_reference(q, k, v, window, sinks=SINKS):
    """GPT-OSS eager attention of one whole sequence: (L, heads, d) q, (L, kv_heads, d) k/v."""
    from transformers.models.gpt_oss.modeling_gpt_oss import eager_attention_forward

    positions = torch.arange(q.shape[0])
    allowed = window_mask(positions, positions, window)
    mask = torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)
    module = SimpleNamespace(num_key_value_groups=HEADS // KV_HEADS, sinks=sinks, training=False)
    out, _ = eager_attention_forward(
        module, *(t.transpose(0, 1)[None].float() for t in (q, k, v)), mask[None, None], SCALE
    )
    return out[0].reshape(q.shape[0], -1)


def attention_for(backend: str, ctx: PassContext, new_lens, seq_lens, table):
    if backend == "torch":
        return TorchBatch(ctx, SCALE)
    return KernelBatch.build(
        new_lens=new_lens,
        seq_lens=seq_lens,
        page_table=table,
        slot_mapping=ctx.blocks * BLOCK + ctx.offsets,
        num_heads=HEADS,
        num_kv_heads=KV_HEADS,
        head_dim=HEAD_DIM,
        block_size=BLOCK,
        dtype=torch.float32,
        scale=SCALE,
    )


BACKENDS = [
    "torch",
    pytest.param(
        "vllm",
        marks=pytest.mark.skipif(
            not vllm_cpu_attention_available(CPU, torch.float32, HEAD_DIM), reason="no vLLM CPU kernels"
        ),
    ),
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_sinks_match_transformers(backend):
    gen = torch.Generator().manual_seed(0)
    lengths = [40, 23]
    seqs = [
        tuple(torch.randn(n, h, HEAD_DIM, generator=gen) for h in (HEADS, KV_HEADS, KV_HEADS))
        for n in lengths
    ]
    pool = BlockPool(NUM_BLOCKS, seed=1, first=0)
    rows = [pool.take(-(-n // BLOCK)) for n in lengths]
    shape = (NUM_BLOCKS, KV_HEADS, BLOCK, HEAD_DIM)
    caches = [[torch.zeros(shape) for _ in range(2)] for _ in WINDOWS]

    def run(spans: dict[int, tuple[int, int]], decode: bool = False) -> None:
        table = torch.zeros(len(spans), 4, dtype=torch.int32)
        for i, request in enumerate(spans):
            table[i, : len(rows[request])] = torch.tensor(rows[request], dtype=torch.int32)
        new_lens = [end - start for start, end in spans.values()]
        seq_lens = [end for _, end in spans.values()]
        positions = torch.cat([torch.arange(start, end) for start, end in spans.values()])
        row_of = torch.repeat_interleave(torch.arange(len(spans)), torch.tensor(new_lens))
        ctx = PassContext.build(table, row_of, positions, new_lens, seq_lens, caches, decode)
        attention = attention_for(backend, ctx, new_lens, seq_lens, table)
        q, k, v = (torch.cat([seqs[r][part][s:e] for r, (s, e) in spans.items()]) for part in range(3))
        for window, (k_cache, v_cache) in zip(WINDOWS, caches, strict=True):
            got = attention.attend(q, k, v, k_cache, v_cache, sliding_window=window, sinks=SINKS)
            offset = 0
            for request, (start, end) in spans.items():
                expected = transformers_reference(*(t[:end] for t in seqs[request]), window)[start:end]
                what = f"{backend} window={window} request {request} positions {start}..{end - 1}"
                torch.testing.assert_close(
                    got[offset : offset + end - start], expected, atol=1e-5, rtol=1e-5, msg=what
                )
                offset += end - start

    run({0: (0, 21), 1: (0, 20)})  # fresh prefills (request 0's ends mid-block)
    run({0: (21, 37)})  # a chunk after a cached prefix, reading it through the window
    for step in range(3):  # decode, request 0 crossing a block boundary, batched with request 1
        run({0: (37 + step, 38 + step), 1: (20 + step, 21 + step)}, decode=True)


def test_these_sinks_change_the_result():
    """The sinks above move the output well beyond the tolerance (a sink of -inf is no sink), so an
    implementation ignoring them fails the check above."""
    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(9, h, HEAD_DIM, generator=gen) for h in (HEADS, KV_HEADS, KV_HEADS))
    without = transformers_reference(q, k, v, None, sinks=torch.full((HEADS,), float("-inf")))
    assert (transformers_reference(q, k, v, None) - without).abs().max() > 1e-2
