"""The host device's compute dtype follows what the CPU computes natively (device/cpu_dtype.py), with the
CPU's flags faked: an AVX2-only EPYC computes a bf16 model in fp32, an AVX-512 bf16 or AMX machine keeps
bf16, and torch's or oneDNN's own caps count as much as the silicon."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tt_vllm_plugin.device.cpu_dtype import CpuArithmetic, _cpuinfo_flags, decide_compute_dtype

# /proc/cpuinfo flags of the two machine kinds seen here (AVX2-only EPYC of 2026-12-06; AVX-512 EPYC).
AVX2_EPYC = frozenset("fpu sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2".split())
AVX512_BF16_EPYC = AVX2_EPYC | {"avx512f", "avx512bw", "avx512_vnni", "avx512_bf16"}
SAPPHIRE_RAPIDS = AVX512_BF16_EPYC | {"amx_tile", "amx_bf16", "amx_int8", "avx512_fp16"}


def cpu(flags: frozenset[str], capability: str = "AVX512", isa: str | None = None, machine: str = "x86_64"):
    return CpuArithmetic(flags=flags, aten_capability=capability, onednn_max_isa=isa, machine=machine)


@pytest.mark.parametrize(
    ("machine", "model", "expected"),
    [
        (cpu(AVX2_EPYC, "AVX2"), torch.bfloat16, torch.float32),
        (cpu(AVX2_EPYC, "AVX2"), torch.float16, torch.float32),
        (cpu(AVX2_EPYC, "AVX2"), torch.float32, torch.float32),
        (cpu(AVX512_BF16_EPYC), torch.bfloat16, torch.bfloat16),
        (cpu(AVX512_BF16_EPYC), torch.float16, torch.float32),  # no avx512_fp16: fp16 is emulated
        (cpu(SAPPHIRE_RAPIDS), torch.bfloat16, torch.bfloat16),
        (cpu(SAPPHIRE_RAPIDS), torch.float16, torch.float16),
        # The silicon has bf16, but torch was told not to use it: what runs is what counts.
        (cpu(AVX512_BF16_EPYC, "AVX2"), torch.bfloat16, torch.float32),
        (cpu(AVX512_BF16_EPYC, isa="AVX2"), torch.bfloat16, torch.float32),
        (cpu(AVX512_BF16_EPYC, isa="AVX512_CORE"), torch.bfloat16, torch.float32),
        (cpu(AVX512_BF16_EPYC, isa="AVX512_CORE_BF16"), torch.bfloat16, torch.bfloat16),
        # aarch64 reports no AVX level; its BFloat16 extension is the "bf16" feature.
        (
            cpu(frozenset({"fp", "asimd", "bf16"}), "DEFAULT", machine="aarch64"),
            torch.bfloat16,
            torch.bfloat16,
        ),
        (cpu(frozenset({"fp", "asimd"}), "DEFAULT", machine="aarch64"), torch.bfloat16, torch.float32),
    ],
)
def test_compute_dtype_follows_the_cpu(machine, model, expected):
    decision = decide_compute_dtype(model, machine, policy="auto")
    assert decision.dtype == expected
    assert decision.changed == (expected != model)


def test_the_decision_says_why_and_how_to_keep_the_model_dtype():
    decision = decide_compute_dtype(torch.bfloat16, cpu(AVX2_EPYC, "AVX2"), policy="auto")
    assert decision.reason == (
        "this CPU has no native bfloat16 arithmetic (x86_64, torch CPU capability AVX2, flags: none of "
        "amx_bf16/avx512_bf16/bf16), so the host device computes in float32 (weights converted once at load, "
        "twice their bfloat16 memory; TT_VLLM_HOST_COMPUTE_DTYPE=model keeps bfloat16)"
    )
    kept = decide_compute_dtype(torch.bfloat16, cpu(AVX2_EPYC, "AVX2"), policy="model")
    assert kept.dtype == torch.bfloat16 and not kept.changed


def test_a_policy_that_does_not_exist_is_refused(monkeypatch):
    monkeypatch.setenv("TT_VLLM_HOST_COMPUTE_DTYPE", "fast")
    with pytest.raises(ValueError) as error:
        decide_compute_dtype(torch.bfloat16, cpu(AVX2_EPYC, "AVX2"))
    assert str(error.value) == "TT_VLLM_HOST_COMPUTE_DTYPE='fast' is not a policy; use 'auto' or 'model'."


def test_flags_are_read_from_cpuinfo_on_both_architectures(tmp_path: Path):
    x86 = tmp_path / "x86"
    x86.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\n"
    )
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\nCPU implementer\t: 0x41\n")
    assert list(_cpuinfo_flags(x86)) == ["fpu", "avx2", "avx512_bf16"]
    assert list(_cpuinfo_flags(arm)) == ["fp", "asimd", "bf16", "i8mm"]
    assert list(_cpuinfo_flags(tmp_path / "missing")) == []


def test_this_machine_is_read_from_torch_and_the_environment(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    here = CpuArithmetic.of_this_machine()
    assert here.onednn_max_isa == "AVX2"
    assert here.aten_capability == str(torch.backends.cpu.get_cpu_capability()).upper()
    assert not here.is_native(torch.bfloat16)  # oneDNN is capped below bf16 whatever the silicon has
