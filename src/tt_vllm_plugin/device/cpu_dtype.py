"""The dtype the host device computes in on a CPU: the model's own where the CPU does its arithmetic
natively, float32 where it would be emulated.

On a CPU without bf16 arithmetic (x86 without avx512_bf16 or AMX, e.g. AVX2-only EPYCs), torch and oneDNN
emulate every bf16 multiply-add by converting to fp32 and back: SmolLM2-135M ran 63 tok/s in bf16 against
287 in fp32 at 32 x 128 on such a machine (issue 29). A bf16 checkpoint (most Hugging Face checkpoints, and
what dtype "auto" picks) must not be 4.5 times slower than the same weights in fp32, and a user cannot be
expected to know to pass ``--dtype float32``. So where the arithmetic would be emulated, the platform
computes in fp32: the weights are converted once at load (twice the bf16 memory: the weights' fp32 size
is what the start-up line states), the KV cache is fp32, and the tokens are the fp32 model's.

"Native" follows what torch will really run, not only what the silicon has: ATen's dispatch level
(``torch.backends.cpu.get_cpu_capability()``, lowered by ``ATEN_CPU_CAPABILITY``) and oneDNN's ISA cap
(``ONEDNN_MAX_CPU_ISA``) can keep a bf16-capable CPU on emulated paths.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from tt_vllm_plugin import envs

COMPUTE_DTYPE_ENV = envs.TT_VLLM_HOST_COMPUTE_DTYPE.name
ONEDNN_ISA_ENV = "ONEDNN_MAX_CPU_ISA"
# /proc/cpuinfo flags (x86 "flags", aarch64 "Features") that mean native arithmetic in each dtype.
NATIVE_FLAGS: dict[torch.dtype, frozenset[str]] = {
    torch.bfloat16: frozenset({"avx512_bf16", "amx_bf16", "bf16"}),  # bf16: aarch64's BFloat16 extension
    torch.float16: frozenset({"avx512_fp16", "amx_fp16", "fphp", "asimdhp"}),
}
# ATen CPU capabilities whose kernels use those instructions (x86; aarch64 reports no AVX level).
_X86_NATIVE_CAPABILITIES = frozenset({"AVX512", "AMX"})
# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) below the first ISA with bf16/fp16 arithmetic, per oneDNN's
# documented list (https://oneapi-src.github.io/oneDNN/dev_guide_cpu_dispatcher_control.html).
_ONEDNN_ISAS_WITHOUT = {
    torch.bfloat16: frozenset(
        {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"}
    ),
    torch.float16: frozenset(
        {
            "SSE41",
            "AVX",
            "AVX2",
            "AVX2_VNNI",
            "AVX2_VNNI_2",
            "AVX512_CORE",
            "AVX512_CORE_VNNI",
            "AVX512_CORE_BF16",
        }
    ),
}
REDUCED_PRECISION = (torch.bfloat16, torch.float16)


@dataclass(frozen=True)
class CpuArithmetic:
    """What this CPU, as torch will drive it, computes natively."""

    flags: frozenset[str]
    aten_capability: str  # torch.backends.cpu.get_cpu_capability(): "AVX2", "AVX512", "DEFAULT", ...
    onednn_max_isa: str | None  # ONEDNN_MAX_CPU_ISA, upper-cased, None when unset
    machine: str  # platform.machine()

    @classmethod
    def of_this_machine(cls) -> CpuArithmetic:
        return cls(
            flags=frozenset(_cpuinfo_flags(Path("/proc/cpuinfo"))),
            aten_capability=str(torch.backends.cpu.get_cpu_capability()).upper(),
            onednn_max_isa=(os.environ.get(ONEDNN_ISA_ENV) or "").strip().upper() or None,
            machine=platform.machine(),
        )

    def is_native(self, dtype: torch.dtype) -> bool:
        if dtype not in REDUCED_PRECISION:
            return True
        if not self.flags & NATIVE_FLAGS[dtype]:
            return False
        if self.machine in ("x86_64", "AMD64"):
            if self.aten_capability not in _X86_NATIVE_CAPABILITIES:
                return False
            if self.onednn_max_isa in _ONEDNN_ISAS_WITHOUT[dtype]:
                return False
        return True

    def describe(self, dtype: torch.dtype) -> str:
        """What decided ``dtype``: the machine, torch's and oneDNN's caps, the CPU flags that count."""
        wanted = sorted(NATIVE_FLAGS[dtype])
        have = sorted(self.flags & set(wanted)) or ["none of " + "/".join(wanted)]
        isa = f", {ONEDNN_ISA_ENV}={self.onednn_max_isa}" if self.onednn_max_isa else ""
        return f"{self.machine}, torch CPU capability {self.aten_capability}{isa}, flags: {', '.join(have)}"


@dataclass(frozen=True)
class ComputeDtype:
    """The host device's decision: compute in ``dtype`` (``model_dtype`` is what the model asked for)."""

    model_dtype: torch.dtype
    dtype: torch.dtype
    reason: str

    @property
    def changed(self) -> bool:
        return self.dtype != self.model_dtype


def decide_compute_dtype(
    model_dtype: torch.dtype, cpu: CpuArithmetic, policy: str | None = None
) -> ComputeDtype:
    """The dtype to compute in for a model of ``model_dtype`` on ``cpu``.

    ``policy`` (``TT_VLLM_HOST_COMPUTE_DTYPE``): ``auto`` (default) as above; ``model`` keeps the model's
    dtype even where it is emulated (to reproduce a bf16 run token for token, slowly).
    """
    policy = (policy if policy is not None else envs.TT_VLLM_HOST_COMPUTE_DTYPE.get()).lower()
    if policy not in ("auto", "model"):
        raise ValueError(f"{COMPUTE_DTYPE_ENV}={policy!r} is not a policy; use 'auto' or 'model'.")
    name = str(model_dtype).removeprefix("torch.")
    if model_dtype not in REDUCED_PRECISION:
        return ComputeDtype(model_dtype, model_dtype, f"{name} is computed as it is")
    machine = cpu.describe(model_dtype)
    if cpu.is_native(model_dtype):
        return ComputeDtype(model_dtype, model_dtype, f"this CPU computes {name} natively ({machine})")
    if policy == "model":
        return ComputeDtype(
            model_dtype,
            model_dtype,
            f"{COMPUTE_DTYPE_ENV}=model keeps {name}, emulated on this CPU ({machine})",
        )
    return ComputeDtype(
        model_dtype,
        torch.float32,
        f"this CPU has no native {name} arithmetic ({machine}), so the host device computes in float32 "
        f"(weights converted once at load, twice their {name} memory; "
        f"{COMPUTE_DTYPE_ENV}=model keeps {name})",
    )


def _cpuinfo_flags(path: Path) -> Iterable[str]:
    """The CPU's feature flags (x86 ``flags``, aarch64 ``Features``) from the first processor entry."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return ()
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return value.split()
    return ()
