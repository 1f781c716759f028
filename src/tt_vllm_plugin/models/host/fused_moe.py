"""The host models' experts on vLLM's CPU fused-MoE kernel, where it computes the same thing.

vLLM's CPU build ships the grouped-GEMM kernel its CPU platform runs unquantised MoE layers with
(``cpu_fused_moe`` over weights prepacked once by ``prepack_moe_weight``; the portable ``vec`` variant,
which vLLM picks on CPUs without AMX and which takes float32 and bfloat16). It applies here when:

- the device is the CPU and the kernel is loaded (``TT_VLLM_HOST_MOE=torch`` turns it off, for A/B runs
  and for tests of the plain-torch experts);
- hidden and expert intermediate sizes are multiples of 32 (the kernel's tile, as vLLM checks);
- the activation is SwiGLU (``silu``), or GPT-OSS's clamped SwiGLU with alpha 1.702 and limit 7.0, the
  constants the kernel's ``swigluoai`` has built in (it takes gate/up interleaved, as GPT-OSS
  checkpoints store them). Other alpha/limit values keep the torch experts.

Measured (benchmarks/host_moe_experts.py, RESULTS.md: 32 experts of 512 -> 256, top 4, fp32, one thread):
1.4-2.9x faster than the torch experts for SwiGLU, 1.4-8x for GPT-OSS's (the most at decode-sized
batches), agreeing to about 1e-7 of the output's magnitude (tests/unit/test_host_moe.py checks both
against transformers).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tt_vllm_plugin import envs
from tt_vllm_plugin.compat import has_vllm_cpu_op, vllm_cpu_ops
from tt_vllm_plugin.models.host.ops import HostOps

_OPS = ("cpu_fused_moe", "prepack_moe_weight")
_ISA = "vec"
_ALIGNMENT = 32
_DTYPES = (torch.float32, torch.bfloat16)
KERNEL_SWIGLU_ALPHA, KERNEL_SWIGLU_LIMIT = 1.702, 7.0  # vLLM's swigluoai constants


def fused_moe_applies(
    device: torch.device,
    dtype: torch.dtype,
    hidden: int,
    intermediate: int,
    clamp: tuple[float, float] | None,
) -> bool:
    """Whether :class:`FusedExperts` computes these experts (see the module docstring); ``clamp`` is
    the clamped SwiGLU's (alpha, limit), None for plain SwiGLU."""
    if envs.TT_VLLM_HOST_MOE.get().lower() == "torch":
        return False
    if device.type != "cpu" or dtype not in _DTYPES or not all(has_vllm_cpu_op(op) for op in _OPS):
        return False
    if hidden % _ALIGNMENT or intermediate % _ALIGNMENT:
        return False
    return clamp is None or clamp == (KERNEL_SWIGLU_ALPHA, KERNEL_SWIGLU_LIMIT)


def interleave(gate_up: torch.Tensor, dim: int) -> torch.Tensor:
    """Gate half then up half along ``dim`` -> gate0, up0, gate1, up1, ... (the kernel's swigluoai)."""
    gate, up = gate_up.chunk(2, dim=dim)
    return torch.stack([gate, up], dim=dim + 1).flatten(dim, dim + 1)


@dataclass
class FusedExperts:
    """Every expert of one layer, prepacked for the kernel."""

    w13: torch.Tensor  # (E, 2 * inter, hidden), prepacked
    w2: torch.Tensor  # (E, hidden, inter), prepacked
    w13_bias: torch.Tensor | None
    w2_bias: torch.Tensor | None
    activation: str  # "silu" | "swigluoai"

    @classmethod
    def build(
        cls,
        gate_up: torch.Tensor,
        down: torch.Tensor,
        gate_up_bias: torch.Tensor | None,
        down_bias: torch.Tensor | None,
        clamped: bool,
    ) -> FusedExperts:
        """From stacked ``F.linear`` matrices, gate rows before up rows (``moe.py``'s layout)."""
        if clamped:  # the kernel's swigluoai reads gate and up interleaved
            gate_up = interleave(gate_up, dim=1)
            gate_up_bias = None if gate_up_bias is None else interleave(gate_up_bias, dim=1)
        ops = vllm_cpu_ops()
        return cls(
            w13=ops.cpu_prepack_moe_weight(gate_up.contiguous(), _ISA),
            w2=ops.cpu_prepack_moe_weight(down.contiguous(), _ISA),
            w13_bias=None if gate_up_bias is None else gate_up_bias.contiguous(),
            w2_bias=None if down_bias is None else down_bias.contiguous(),
            activation="swigluoai" if clamped else "silu",
        )

    def __call__(
        self, x: torch.Tensor, weights: torch.Tensor, ids: torch.Tensor, ops: HostOps
    ) -> torch.Tensor:
        out = torch.empty_like(x)
        vllm_cpu_ops().cpu_fused_moe(
            out,
            x.contiguous(),
            self.w13,
            self.w2,
            self.w13_bias,
            self.w2_bias,
            weights.float(),  # vLLM's router hands the kernel float32 weights
            ids.to(torch.int32),
            self.activation,
            _ISA,
            False,
        )
        return out
