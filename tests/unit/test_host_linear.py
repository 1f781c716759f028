"""HostLinear (vLLM's prepacked CPU GEMMs, else F.linear) against torch.nn.functional.linear."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tt_vllm_plugin.models.host.linear import HostLinear, choose_backend, vllm_cpu_kernels_available

# Shapes of the default model's projections (qkv, o, gate_up, down, a cut of the LM head) plus odd ones.
SHAPES = [(960, 576), (576, 576), (3072, 576), (576, 1536), (4096, 576), (17, 33)]


def _case(out_features: int, in_features: int, rows: int, dtype: torch.dtype, bias: bool):
    generator = torch.Generator().manual_seed(out_features * 7 + in_features + rows)
    weight = torch.randn(out_features, in_features, generator=generator) / in_features**0.5
    x = torch.randn(rows, in_features, generator=generator)
    b = torch.randn(out_features, generator=generator) if bias else None
    return weight.to(dtype), x.to(dtype), None if b is None else b.to(dtype)


def test_cpu_picks_vllm_kernel_when_present() -> None:
    weight = torch.zeros(64, 64)
    expected = "torch" if not vllm_cpu_kernels_available() else ("onednn", "sgl")
    assert choose_backend(weight) in expected


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("rows", [1, 5, 32, 100])
@pytest.mark.parametrize("bias", [False, True])
def test_float32_matches_f_linear(shape: tuple[int, int], rows: int, bias: bool) -> None:
    weight, x, b = _case(*shape, rows, torch.float32, bias)
    linear = HostLinear(weight, b)
    out = linear(x)
    assert out.shape == (rows, shape[0]) and out.dtype == torch.float32
    torch.testing.assert_close(out, F.linear(x, weight, b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("rows", [1, 32])
@pytest.mark.parametrize("bias", [False, True])
def test_bfloat16_matches_f_linear(shape: tuple[int, int], rows: int, bias: bool) -> None:
    weight, x, b = _case(*shape, rows, torch.bfloat16, bias)
    out = HostLinear(weight, b)(x)
    assert out.dtype == torch.bfloat16
    reference = F.linear(x.float(), weight.float(), None if b is None else b.float())
    torch.testing.assert_close(out.float(), reference, rtol=2e-2, atol=2e-2)


def test_non_contiguous_input_and_leading_dims() -> None:
    weight, x, b = _case(96, 64, 12, torch.float32, True)
    linear = HostLinear(weight, b)
    wide = torch.randn(12, 128)
    wide[:, ::2] = x
    strided = wide[:, ::2]  # (12, 64), not contiguous
    torch.testing.assert_close(linear(strided), F.linear(x, weight, b), rtol=1e-5, atol=1e-5)
    batched = x.reshape(3, 4, 64)
    torch.testing.assert_close(linear(batched), F.linear(batched, weight, b), rtol=1e-5, atol=1e-5)


def test_torch_backend_is_f_linear() -> None:
    weight, x, b = _case(40, 24, 3, torch.float32, True)
    linear = HostLinear(weight, b, backend="torch")
    assert linear.backend == "torch"
    assert torch.equal(linear(x), F.linear(x, weight, b))
