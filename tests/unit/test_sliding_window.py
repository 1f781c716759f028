"""Sliding-window attention of the host models (models/host/sliding_window.py) against transformers' own
mask functions, and both attention backends (vLLM's CPU kernels and the torch path) against dense attention
under that mask, on a paged cache: fresh prefill, prefill after a cached prefix, chunked prefill and
decode, with windows shorter and longer than the sequences and layers of both kinds in one pass."""

from __future__ import annotations

import pytest
import torch
from transformers.masking_utils import sliding_window_causal_mask_function

from tests.contract.helpers import BlockPool
from tt_vllm_plugin.models.host.cpu_attention import KernelBatch, vllm_cpu_attention_available
from tt_vllm_plugin.models.host.paged_attention import PassContext, TorchBatch
from tt_vllm_plugin.models.host.sliding_window import (
    first_visible,
    uniform_windows,
    window_mask,
    windows_by_layer_type,
)

CPU = torch.device("cpu")
HEADS, KV_HEADS, HEAD_DIM, BLOCK, NUM_BLOCKS = 4, 2, 32, 16, 48
SCALE = HEAD_DIM**-0.5


@pytest.mark.parametrize("window", [1, 2, 5, 16, 17, 40])
def test_mask_is_transformers_mask(window):
    reference = sliding_window_causal_mask_function(window)
    queries, keys = torch.arange(40), torch.arange(40)
    # transformers' mask functions take index tensors (broadcast here over the whole grid).
    expected = reference(torch.tensor(0), torch.tensor(0), queries[:, None], keys[None, :])
    assert torch.equal(window_mask(queries, keys, window), expected)
    # Each query sees exactly `window` keys once it is that far in, itself included.
    assert expected.sum(1).tolist() == [min(q + 1, window) for q in range(40)]
    assert [first_visible(q, window) for q in range(40)] == [int(row.nonzero()[0]) for row in expected]


def test_no_window_is_causal():
    queries = torch.arange(3, 9)
    keys = torch.arange(9)
    assert torch.equal(window_mask(queries, keys, None), keys[None, :] <= queries[:, None])
    assert first_visible(1000, None) == 0


def test_layer_windows_follow_transformers_configs():
    from transformers import Gemma3TextConfig, MistralConfig, Qwen2Config, Qwen3Config

    qwen2 = Qwen2Config(num_hidden_layers=4, use_sliding_window=True, sliding_window=8, max_window_layers=2)
    assert windows_by_layer_type(qwen2, 4, "q") == [None, None, 8, 8]  # layers >= max_window_layers
    qwen3 = Qwen3Config(num_hidden_layers=3, use_sliding_window=False, sliding_window=8)
    assert windows_by_layer_type(qwen3, 3, "q") == [None, None, None]  # the flag off drops the window
    gemma = Gemma3TextConfig(num_hidden_layers=7, sliding_window=12)
    assert windows_by_layer_type(gemma, 7, "g") == [12] * 5 + [None, 12]  # 5 local : 1 global
    assert uniform_windows(MistralConfig(num_hidden_layers=2, sliding_window=9), 2) == [9, 9]
    assert uniform_windows(MistralConfig(num_hidden_layers=2, sliding_window=None), 2) == [None, None]


def test_layer_windows_refuse_what_transformers_cannot_run():
    from types import SimpleNamespace

    no_window = SimpleNamespace(layer_types=["sliding_attention"], sliding_window=None)
    with pytest.raises(NotImplementedError, match="sliding_attention layers but sliding_window is not set"):
        windows_by_layer_type(no_window, 1, "X")
    other = SimpleNamespace(layer_types=["chunked_attention"], sliding_window=4)
    with pytest.raises(NotImplementedError, match="layer types chunked_attention are not implemented"):
        windows_by_layer_type(other, 1, "X")


def dense_reference(q, k, v, window):
    """transformers-style attention of one whole sequence: (L, heads, d) q, (L, kv_heads, d) k/v."""
    positions = torch.arange(q.shape[0])
    mask = window_mask(positions, positions, window)
    qh, kh, vh = (t.transpose(0, 1).float() for t in (q, k, v))
    kh = kh.repeat_interleave(HEADS // KV_HEADS, 0)
    vh = vh.repeat_interleave(HEADS // KV_HEADS, 0)
    scores = (qh @ kh.transpose(1, 2)) * SCALE
    scores = scores.masked_fill(~mask, float("-inf"))
    return (scores.softmax(-1) @ vh).transpose(0, 1).reshape(q.shape[0], -1)


class Scenario:
    """Requests of known lengths run through a backend pass by pass; every pass's output is checked
    against dense attention of the whole sequence."""

    def __init__(self, lengths: list[int], backend: str, dtype: torch.dtype, windows: list[int | None]):
        gen = torch.Generator().manual_seed(sum(lengths))
        self.backend, self.dtype, self.windows = backend, dtype, windows
        self.seqs = [
            tuple(torch.randn(n, h, HEAD_DIM, generator=gen) for h in (HEADS, KV_HEADS, KV_HEADS))
            for n in lengths
        ]
        pool = BlockPool(NUM_BLOCKS, seed=len(lengths), first=0)
        self.rows = [pool.take(-(-n // BLOCK)) for n in lengths]
        # One cache per layer (window), as a model has.
        shape = (NUM_BLOCKS, KV_HEADS, BLOCK, HEAD_DIM)
        self.caches = [[torch.zeros(shape, dtype=dtype) for _ in range(2)] for _ in windows]

    def run(self, spans: dict[int, tuple[int, int]], decode: bool = False) -> None:
        ids = list(spans)
        width = max(len(r) for r in self.rows) + 1
        table = torch.zeros(len(ids), width, dtype=torch.int32)
        for i, request in enumerate(ids):
            table[i, : len(self.rows[request])] = torch.tensor(self.rows[request], dtype=torch.int32)
        new_lens = [end - start for start, end in spans.values()]
        positions = torch.cat([torch.arange(start, end) for start, end in spans.values()])
        rows = torch.repeat_interleave(torch.arange(len(ids)), torch.tensor(new_lens))
        seq_lens = [end for _, end in spans.values()]
        ctx = PassContext.build(table, rows, positions, new_lens, seq_lens, self.caches, decode)
        if self.backend == "torch":
            attention = TorchBatch(ctx, SCALE)
        else:
            attention = KernelBatch.build(
                new_lens=new_lens,
                seq_lens=seq_lens,
                page_table=table,
                slot_mapping=ctx.blocks * BLOCK + ctx.offsets,
                num_heads=HEADS,
                num_kv_heads=KV_HEADS,
                head_dim=HEAD_DIM,
                block_size=BLOCK,
                dtype=self.dtype,
                scale=SCALE,
            )

        def flat(part: int) -> torch.Tensor:
            return torch.cat([self.seqs[r][part][s:e] for r, (s, e) in spans.items()]).to(self.dtype)

        q, k, v = flat(0), flat(1), flat(2)
        tol = {"atol": 1e-5, "rtol": 1e-5} if self.dtype == torch.float32 else {"atol": 3e-2, "rtol": 3e-2}
        for window, (k_cache, v_cache) in zip(self.windows, self.caches, strict=True):
            got = attention.attend(q, k, v, k_cache, v_cache, sliding_window=window).float()
            offset = 0
            for request, (start, end) in spans.items():
                expected = dense_reference(*(t[:end] for t in self.seqs[request]), window)[start:end]
                what = f"{self.backend} window={window} request {request} positions {start}..{end - 1}"
                torch.testing.assert_close(got[offset : offset + end - start], expected, msg=what, **tol)
                offset += end - start


BACKENDS = [
    pytest.param("torch", torch.float32, id="torch-fp32"),
    pytest.param(
        "vllm",
        torch.float32,
        id="kernels-fp32",
        marks=pytest.mark.skipif(
            not vllm_cpu_attention_available(CPU, torch.float32, HEAD_DIM), reason="no vLLM CPU kernels"
        ),
    ),
    pytest.param(
        "vllm",
        torch.bfloat16,
        id="kernels-bf16",
        marks=pytest.mark.skipif(
            not vllm_cpu_attention_available(CPU, torch.bfloat16, HEAD_DIM), reason="no vLLM CPU kernels"
        ),
    ),
]
# Sliding layers of several widths (one not a multiple of the block, one wider than every sequence)
# beside a full layer, in one pass.
WINDOWS = [7, None, 20, 200, 1]


@pytest.mark.parametrize(("backend", "dtype"), BACKENDS)
def test_prefill_prefix_chunks_and_decode(backend, dtype):
    scenario = Scenario([70, 45, 33, 8], backend, dtype, WINDOWS)
    scenario.run({1: (0, 45)})  # request 1 whole: its first 32 tokens become request 2's cached prefix
    scenario.rows[2][:2] = scenario.rows[1][:2]
    shared = zip(scenario.seqs[1], scenario.seqs[2], strict=True)
    scenario.seqs[2] = tuple(torch.cat([a[:32], b[32:]]) for a, b in shared)
    # Request 0's first chunk ends mid-block; request 2 computes only its tail after the shared prefix;
    # request 3 is fresh and shorter than most windows.
    scenario.run({0: (0, 29), 2: (32, 33), 3: (0, 5)})
    scenario.run({0: (29, 66)})  # the second chunk reads the first through the window
    for step in range(3):  # decode: request 0 crosses a block boundary, request 3 grows into its windows
        scenario.run({0: (66 + step, 67 + step), 3: (5 + step, 6 + step)}, decode=True)


@pytest.mark.parametrize(("backend", "dtype"), BACKENDS)
def test_every_window_width_at_every_position(backend, dtype):
    """One sequence prefilled at once, then decoded token by token: the narrowest windows and those around
    the block size."""
    windows = [1, 2, 3, BLOCK - 1, BLOCK, BLOCK + 1, BLOCK + 2]
    scenario = Scenario([40], backend, dtype, windows)
    scenario.run({0: (0, 34)})
    for position in range(34, 40):
        scenario.run({0: (position, position + 1)}, decode=True)
