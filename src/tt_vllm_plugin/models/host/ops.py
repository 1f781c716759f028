"""The host decoder's elementwise steps, on vLLM's fused CPU kernels where they run (else torch).

vLLM's CPU build ships the kernels its own CPU models use between the matmuls: ``silu_and_mul`` (and
``gelu_tanh_and_mul`` for Gemma), ``fused_add_rms_norm`` (residual add and RMSNorm in one pass) and
``rotary_embedding`` (in place on the q/k columns of the fused qkv output). On this CPU the unfused
torch versions are memory-bound: ``F.silu(gate) * up`` over a 2,048-token prefill moves about three
times the bytes of the fused kernel, and RoPE as torch ops is six of them. Measured on SmolLM2-135M
(2 cores, fp32): 2,048-token MLP 72.8 -> 59.9 ms per layer, RoPE 1.67 -> 0.20 ms per layer.

The torch versions follow transformers' numerics exactly; the kernels agree to about 1e-6 (fp32)
because they round in another order. One choice per model (:func:`fused_kernels_available`):
CPU with vLLM's kernels loaded, else torch (a CUDA host device, a vLLM without its CPU build).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from tt_vllm_plugin.compat import has_vllm_cpu_op

_FUSED_OPS = ("silu_and_mul", "fused_add_rms_norm", "rms_norm", "rotary_embedding")

# Below this many elements a fused kernel runs on the calling thread alone. Each kernel is an OpenMP
# parallel region, and a decode step's norms, activations and RoPE (batch 32: 18k-49k elements, a few
# microseconds of work) cost more in the region's fork and barrier than they save; when other processes
# take the cores, every barrier also waits for a preempted thread (issue 29: these ops took 30 % of a
# decode step's time on a busy 2-core machine). Prefill-sized calls (thousands of tokens) stay parallel.
SERIAL_BELOW_ELEMENTS = 1 << 16


@contextmanager
def _serial_if_small(numel: int) -> Iterator[None]:
    """One OpenMP thread for a call over ``numel`` elements below :data:`SERIAL_BELOW_ELEMENTS`. Each
    row's result is the same either way: the kernels split rows (or elements), never one reduction."""
    threads = torch.get_num_threads()
    if numel >= SERIAL_BELOW_ELEMENTS or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# Rotates q and k, (N, heads * head_dim) each, for the positions it was made for.
RotateFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def fused_kernels_available(device: torch.device) -> bool:
    """Whether vLLM's fused CPU kernels can run on ``device``."""
    return device.type == "cpu" and all(has_vllm_cpu_op(op) for op in _FUSED_OPS)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm exactly as transformers' Llama/Qwen norms: statistics in float32, weight after the cast."""
    if x.dtype == torch.float32 and weight.dtype == torch.float32:
        # torch's fused kernel: bitwise the same result in float32, a third of the ops (decode is op-bound).
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x32.to(x.dtype)


class HostOps:
    """The elementwise ops of one model, fused (vLLM's kernels) or plain torch, chosen once."""

    def __init__(self, fused: bool) -> None:
        self.fused = fused
        # Gemma's MLP activation; checked on its own, a model that never uses it does not depend on it.
        self.fused_gelu_tanh = fused and has_vllm_cpu_op("gelu_tanh_and_mul")

    def rms_norm(self, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        if self.fused and x.is_contiguous():
            out = torch.empty_like(x)
            with _serial_if_small(x.numel()):
                torch.ops._C.rms_norm(out, x, weight, eps)
            return out
        return rms_norm(x, weight, eps)

    def add_rms_norm(
        self, x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``residual + x`` and its RMSNorm: (normed, new residual). The fused kernel writes both in
        place (``x`` and ``residual`` are scratch afterwards)."""
        if self.fused and x.is_contiguous() and residual.is_contiguous():
            with _serial_if_small(x.numel()):
                torch.ops._C.fused_add_rms_norm(x, residual, weight, eps)
            return x, residual
        residual = residual + x
        return rms_norm(residual, weight, eps), residual

    def silu_and_mul(self, gate_up: torch.Tensor) -> torch.Tensor:
        """SwiGLU's ``silu(gate) * up`` for ``gate_up`` = [gate | up] on the last dim."""
        if self.fused and gate_up.is_contiguous():
            out = gate_up.new_empty((*gate_up.shape[:-1], gate_up.shape[-1] // 2))
            with _serial_if_small(gate_up.numel()):
                torch.ops._C.silu_and_mul(out, gate_up)
            return out
        gate, up = gate_up.chunk(2, dim=-1)
        return F.silu(gate) * up

    def gelu_tanh_and_mul(self, gate_up: torch.Tensor) -> torch.Tensor:
        """GeGLU's ``gelu_tanh(gate) * up`` (transformers' ``gelu_pytorch_tanh``) for ``gate_up`` =
        [gate | up] on the last dim."""
        if self.fused_gelu_tanh and gate_up.is_contiguous():
            out = gate_up.new_empty((*gate_up.shape[:-1], gate_up.shape[-1] // 2))
            with _serial_if_small(gate_up.numel()):
                torch.ops._C.gelu_tanh_and_mul(out, gate_up)
            return out
        gate, up = gate_up.chunk(2, dim=-1)
        return F.gelu(gate, approximate="tanh") * up


def rope_tables(
    inv_freq: torch.Tensor,
    max_seq_len: int,
    dtype: torch.dtype,
    device: torch.device,
    attention_scaling: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of every position < ``max_seq_len``, (max_seq_len, head_dim) each, times
    ``attention_scaling`` (YaRN, LongRoPE); computed in float32 then cast, like transformers does per step."""
    freqs = torch.arange(max_seq_len, dtype=torch.float32)[:, None] * inv_freq[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)
    cos, sin = emb.cos() * attention_scaling, emb.sin() * attention_scaling
    return cos.to(device=device, dtype=dtype), sin.to(device=device, dtype=dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` (N, heads, head_dim) by per-token ``cos``/``sin`` (N, head_dim), rotate-half style."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos[:, None, :] + rotated * sin[:, None, :]


class RotaryEmbedding:
    """Rotate-half (NeoX-style) RoPE for every position below ``max_seq_len`` (settings: ``rope.py``)."""

    def __init__(
        self,
        inv_freq: torch.Tensor,
        head_dim: int,
        max_seq_len: int,
        dtype: torch.dtype,
        device: torch.device,
        fused: bool,
        attention_scaling: float = 1.0,
    ) -> None:
        self.head_dim = head_dim
        self.fused = fused
        self.cos, self.sin = rope_tables(inv_freq, max_seq_len, dtype, device, attention_scaling)
        # vLLM's kernel reads one (max_seq_len, head_dim) table: cos of each frequency, then sin.
        half = head_dim // 2
        self.cos_sin_cache = torch.cat([self.cos[:, :half], self.sin[:, :half]], dim=-1).contiguous()

    def at(self, positions: torch.Tensor) -> RotateFn:
        """The rotation for tokens at ``positions`` (N,), looked up once for every layer of a pass."""
        if self.fused:
            positions = positions.long()

            def rotate_in_place(q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                with _serial_if_small(q.numel()):
                    torch.ops._C.rotary_embedding(positions, q, k, self.head_dim, self.cos_sin_cache, True)
                return q, k

            return rotate_in_place
        cos, sin = self.cos[positions], self.sin[positions]

        def rotate(q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            n = q.shape[0]
            q = apply_rope(q.reshape(n, -1, self.head_dim), cos, sin).reshape(n, -1)
            k = apply_rope(k.reshape(n, -1, self.head_dim), cos, sin).reshape(n, -1)
            return q, k

        return rotate
