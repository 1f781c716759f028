"""vLLM's fused CPU kernels in the host decoder against the plain torch ops they replace."""

from __future__ import annotations

import pytest
import torch

from tt_vllm_plugin.models.host.ops import HostOps, RotaryEmbedding, fused_kernels_available

pytestmark = pytest.mark.skipif(
    not fused_kernels_available(torch.device("cpu")), reason="vLLM's CPU kernels are not loaded here"
)

FUSED, PLAIN = HostOps(fused=True), HostOps(fused=False)
TOLERANCE = {torch.float32: dict(atol=2e-6, rtol=2e-6), torch.bfloat16: dict(atol=2e-2, rtol=2e-2)}
DTYPES = [torch.float32, torch.bfloat16]


def test_cpu_with_vllm_kernels_uses_them():
    assert fused_kernels_available(torch.device("cpu"))
    assert not fused_kernels_available(torch.device("meta"))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [1, 37])
def test_silu_and_mul(dtype, rows):
    gate_up = torch.randn(rows, 2 * 96, generator=torch.Generator().manual_seed(rows)).to(dtype)
    torch.testing.assert_close(FUSED.silu_and_mul(gate_up), PLAIN.silu_and_mul(gate_up), **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [1, 37])
def test_gelu_tanh_and_mul(dtype, rows):
    assert FUSED.fused_gelu_tanh and not PLAIN.fused_gelu_tanh
    gate_up = 3 * torch.randn(rows, 2 * 96, generator=torch.Generator().manual_seed(rows)).to(dtype)
    torch.testing.assert_close(
        FUSED.gelu_tanh_and_mul(gate_up), PLAIN.gelu_tanh_and_mul(gate_up), **TOLERANCE[dtype]
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm_and_fused_residual_add(dtype):
    gen = torch.Generator().manual_seed(1)
    x, residual, weight = (torch.randn(shape, generator=gen).to(dtype) for shape in [(9, 64), (9, 64), (64,)])
    torch.testing.assert_close(
        FUSED.rms_norm(x, weight, 1e-5), PLAIN.rms_norm(x, weight, 1e-5), **TOLERANCE[dtype]
    )

    expected_normed, expected_residual = PLAIN.add_rms_norm(x.clone(), residual.clone(), weight, 1e-5)
    normed, new_residual = FUSED.add_rms_norm(x.clone(), residual.clone(), weight, 1e-5)
    torch.testing.assert_close(new_residual, expected_residual, **TOLERANCE[dtype])
    torch.testing.assert_close(normed, expected_normed, **TOLERANCE[dtype])


def test_rope_in_place_on_fused_qkv_columns_leaves_v_alone():
    """q and k are column slices of the qkv matmul's output (strided views), as the model passes them."""
    heads, kv_heads, head_dim, n = 6, 2, 32, 11
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
    fused = RotaryEmbedding(inv_freq, head_dim, 256, torch.float32, torch.device("cpu"), fused=True)
    plain = RotaryEmbedding(inv_freq, head_dim, 256, torch.float32, torch.device("cpu"), fused=False)
    positions = torch.tensor([0, 1, 2, 50, 51, 200, 255, 7, 8, 9, 10])
    qkv = torch.randn(n, (heads + 2 * kv_heads) * head_dim, generator=torch.Generator().manual_seed(2))
    q_end, k_end = heads * head_dim, (heads + kv_heads) * head_dim
    expected_q, expected_k = plain.at(positions)(qkv[:, :q_end], qkv[:, q_end:k_end])
    v_before = qkv[:, k_end:].clone()

    q, k = fused.at(positions)(qkv[:, :q_end], qkv[:, q_end:k_end])

    torch.testing.assert_close(q, expected_q, **TOLERANCE[torch.float32])
    torch.testing.assert_close(k, expected_k, **TOLERANCE[torch.float32])
    assert torch.equal(qkv[:, k_end:], v_before)
    assert q.data_ptr() == qkv.data_ptr()  # rotated where it lies, no copy
