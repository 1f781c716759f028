"""Linear layers of the host models, on vLLM's own CPU GEMM kernels where they exist.

vLLM's CPU build ships a oneDNN GEMM with weights prepacked once at load time (``onednn_mm``) and, on
CPUs with AMX, a small-GEMM kernel (``weight_packed_linear``); its CPU platform picks between them
per weight in ``vllm.model_executor.layers.utils.dispatch_cpu_unquantized_gemm``. :class:`HostLinear`
makes the same per-weight choice for our host models, and falls back to ``torch.nn.functional.linear``
wherever those kernels are not available (CUDA host device, a vLLM build without them).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F

from tt_vllm_plugin.compat import has_vllm_cpu_op, vllm_cpu_kernels_available, vllm_cpu_ops

Backend = Literal["onednn", "sgl", "torch"]

# oneDNN primitive cache entries per weight (one per distinct batch size M); vLLM uses 32 too.
_ONEDNN_PRIMITIVE_CACHE = 32

# Whether vLLM's CPU kernels are loaded (vllm._C) is decided once per process, in tt_vllm_plugin.compat.


def _sgl_fits(weight: torch.Tensor) -> bool:
    """vLLM's own rule for its small-GEMM (AMX) kernel."""
    # The op is in vllm._C; its Python wrapper only from 0.32 (compat.vllm_cpu_ops).
    if not has_vllm_cpu_op("convert_weight_packed") or not hasattr(
        vllm_cpu_ops(), "weight_packed_linear_cpu"
    ):
        return False
    try:
        from vllm.model_executor.layers.utils import check_cpu_sgl_kernel
    except Exception:
        return False
    n, k = weight.shape
    return bool(check_cpu_sgl_kernel(n, k, weight.dtype))


def choose_backend(weight: torch.Tensor) -> Backend:
    """The GEMM :class:`HostLinear` uses for ``weight`` (out_features, in_features)."""
    if weight.device.type != "cpu" or weight.ndim != 2 or not vllm_cpu_kernels_available():
        return "torch"
    if _sgl_fits(weight):
        return "sgl"
    return "onednn"


class HostLinear:
    """``y = x @ weight.T + bias`` for a fixed weight, prepacked once for the GEMM chosen at construction.

    With ``keep_weight=False`` a prepacked layer drops its plain ``weight`` (the packed copy is all it
    reads), so a model does not hold its weights twice; the tied LM head keeps it (it is the embedding).
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None = None,
        backend: Backend | None = None,
        keep_weight: bool = True,
    ) -> None:
        self.out_features, self.in_features = weight.shape
        self.dtype = weight.dtype
        self.weight: torch.Tensor | None = weight
        self.bias = bias
        self.backend: Backend = backend or choose_backend(weight)
        self._packed: Any = None
        if self.backend == "onednn":
            try:
                self._packed = vllm_cpu_ops().create_onednn_mm(weight.t(), _ONEDNN_PRIMITIVE_CACHE)
            except RuntimeError:  # oneDNN refused this shape/dtype: vLLM falls back the same way
                self.backend = "torch"
        elif self.backend == "sgl":
            self._packed = torch.ops._C.convert_weight_packed(weight)
            # The kernel wants a float32 bias (vLLM converts it the same way).
            self.bias = None if bias is None else bias.float()
        if self.backend != "torch" and not keep_weight:
            self.weight = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.backend == "onednn":
            # oneDNN reads x as a dense row-major (M, K) matrix.
            return vllm_cpu_ops().onednn_mm(
                self._packed, x if x.is_contiguous() else x.contiguous(), self.bias
            )
        if self.backend == "sgl":
            return vllm_cpu_ops().weight_packed_linear_cpu(
                x.contiguous(), self._packed, self.out_features, self.bias
            )
        assert self.weight is not None
        return F.linear(x, self.weight, self.bias)

    def __repr__(self) -> str:
        dtype = str(self.dtype).removeprefix("torch.")
        return f"HostLinear({self.in_features} -> {self.out_features}, {dtype}, {self.backend})"
