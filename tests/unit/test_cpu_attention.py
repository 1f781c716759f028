"""The choice between vLLM's CPU attention kernels and the plain-torch path of the host models, and the
two paths agreeing on a real paged cache (numerics vs transformers are in tests/contract, which runs
at the host block size 16 and so through the kernels for head sizes they take)."""

from __future__ import annotations

import pytest
import torch

from tt_vllm_plugin.models.host.cpu_attention import (
    HOST_ATTENTION_ENV,
    KernelBatch,
    host_attention_choice,
    kernel_block_size_ok,
    vllm_cpu_attention_available,
)
from tt_vllm_plugin.models.host.paged_attention import (
    block_coordinates,
    decode_attention,
    prefill_attention,
    write_kv,
)

CPU = torch.device("cpu")
needs_kernels = pytest.mark.skipif(
    not vllm_cpu_attention_available(CPU, torch.float32, 64), reason="vLLM's CPU attention kernels absent"
)


@pytest.mark.parametrize(
    ("env", "device", "dtype", "head_dim", "expected"),
    [
        ("torch", CPU, torch.float32, 64, "torch"),
        (None, CPU, torch.float32, 16, "torch"),  # head size the kernels do not take
        (None, CPU, torch.float64, 64, "torch"),
        (None, torch.device("meta"), torch.float32, 64, "torch"),
    ],
)
def test_choice_falls_back_to_torch(monkeypatch, env, device, dtype, head_dim, expected):
    if env is None:
        monkeypatch.delenv(HOST_ATTENTION_ENV, raising=False)
    else:
        monkeypatch.setenv(HOST_ATTENTION_ENV, env)
    assert host_attention_choice(device, dtype, head_dim) == expected


@needs_kernels
def test_choice_is_the_kernels_where_they_run(monkeypatch):
    monkeypatch.delenv(HOST_ATTENTION_ENV, raising=False)
    assert host_attention_choice(CPU, torch.float32, 64) == "vllm"
    assert host_attention_choice(CPU, torch.bfloat16, 64) == "vllm"


def test_bad_choice_is_an_error(monkeypatch):
    monkeypatch.setenv(HOST_ATTENTION_ENV, "fast")
    with pytest.raises(ValueError, match=r"TT_VLLM_HOST_ATTENTION='fast': expected 'auto' or 'torch'\."):
        host_attention_choice(CPU, torch.float32, 64)


@pytest.mark.parametrize(("block_size", "ok"), [(4, False), (8, False), (16, True), (32, True), (64, True)])
def test_kernel_block_sizes(block_size, ok):
    assert kernel_block_size_ok(block_size) is ok


HEADS, KV_HEADS, HEAD_DIM, BLOCK, NUM_BLOCKS = 6, 2, 64, 16, 64


def _caches():
    shape = (NUM_BLOCKS, KV_HEADS, BLOCK, HEAD_DIM)
    return [torch.zeros(shape) for _ in range(2)], [torch.zeros(shape) for _ in range(2)]


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kernels_match_torch_path_for_prefix_prefill_and_decode(dtype):
    """Three requests (one fresh, one after a 20-token cached prefix, one of 1 token), then a decode
    step of all three with a padded-out slot: both paths give the same attention outputs."""
    gen = torch.Generator().manual_seed(0)
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 2e-2, "rtol": 2e-2}
    table = torch.randperm(NUM_BLOCKS, generator=gen)[:12].reshape(3, 4).int()
    (k_ref, v_ref), (k_vllm, v_vllm) = _caches()
    k_ref, v_ref, k_vllm, v_vllm = (c.to(dtype) for c in (k_ref, v_ref, k_vllm, v_vllm))

    def run(starts, ends, rows_table):
        new_lens = [e - s for s, e in zip(starts, ends, strict=True)]
        n = sum(new_lens)
        q = torch.randn(n, HEADS, HEAD_DIM, generator=gen).to(dtype)
        k = torch.randn(n, KV_HEADS, HEAD_DIM, generator=gen).to(dtype)
        v = torch.randn(n, KV_HEADS, HEAD_DIM, generator=gen).to(dtype)
        rows = torch.repeat_interleave(torch.arange(len(new_lens)), torch.tensor(new_lens))
        positions = torch.cat([torch.arange(s, e) for s, e in zip(starts, ends, strict=True)])
        blocks, offsets = block_coordinates(rows_table, rows, positions, BLOCK)
        write_kv(k_ref, v_ref, blocks, offsets, k, v)
        if all(length == 1 for length in new_lens):
            expected = decode_attention(q, k_ref, v_ref, rows_table, positions, HEAD_DIM**-0.5)
        else:
            expected = prefill_attention(q, k, v, k_ref, v_ref, rows_table, starts, new_lens, HEAD_DIM**-0.5)
        batch = KernelBatch.build(
            new_lens=new_lens,
            seq_lens=list(ends),
            page_table=rows_table,
            slot_mapping=blocks * BLOCK + offsets,
            num_heads=HEADS,
            num_kv_heads=KV_HEADS,
            head_dim=HEAD_DIM,
            block_size=BLOCK,
            dtype=dtype,
            scale=HEAD_DIM**-0.5,
        )
        got = batch.attend(q, k, v, k_vllm, v_vllm)
        torch.testing.assert_close(got.float(), expected.float(), **tol)

    run([0], [20], table[1:2])  # request 1's prefix, computed first
    run([0, 20, 0], [37, 33, 1], table)  # fresh, cached-prefix tail, 1-token prompt: one batch
    run([37, 33], [38, 34], table[:2])  # decode of requests 0 and 1 (request 2 not scheduled)
