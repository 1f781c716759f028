"""Which TT model class implements which Hugging Face architecture, on which device.

TT classes are named like Tenstorrent's: ``"TT" + <HF architecture>`` (``TTLlamaForCausalLM``). The
device picks the implementation: on the host device our PyTorch models, on the ttnn device tt-metal's
generator classes (``models.ttt_compat.tt.generator_vllm``, or ``models.tt_transformers`` before tt-metal
renamed it), seen through :class:`~tt_vllm_plugin.models.tt_metal.adapter.TTMetalModel`. Everything is
referenced as ``"module:Class"`` strings so nothing heavy is imported until a model is needed.

Callers that pass no device get the one the platform runs on (``TT_VLLM_DEVICE``), falling back to the
host device when that cannot be resolved (the plugin is then inactive anyway).
"""

from __future__ import annotations

import importlib

from tt_vllm_plugin.activation import DeviceChoice, DeviceSelectionError, resolve_device
from tt_vllm_plugin.models.tt_metal import adapter as tt_metal_adapter
from tt_vllm_plugin.models.tt_metal import generators

_HOST_LLAMA = "tt_vllm_plugin.models.host.llama.architectures"
_HOST_GEMMA3 = "tt_vllm_plugin.models.host.gemma3.architectures"
_HOST_QWEN3_MOE = "tt_vllm_plugin.models.host.qwen3_moe.architectures"
_HOST_GPT_OSS = "tt_vllm_plugin.models.host.gpt_oss.architectures"

# TT architecture name -> "module:ClassName" of the host (PyTorch) implementation.
TT_MODEL_CLASSES: dict[str, str] = {
    "TTGemma3ForCausalLM": f"{_HOST_GEMMA3}:TTGemma3ForCausalLM",
    "TTGptOssForCausalLM": f"{_HOST_GPT_OSS}:TTGptOssForCausalLM",
    "TTLlamaForCausalLM": f"{_HOST_LLAMA}:TTLlamaForCausalLM",
    "TTMistralForCausalLM": f"{_HOST_LLAMA}:TTMistralForCausalLM",
    "TTQwen2ForCausalLM": f"{_HOST_LLAMA}:TTQwen2ForCausalLM",
    "TTQwen3ForCausalLM": f"{_HOST_LLAMA}:TTQwen3ForCausalLM",
    "TTQwen3MoeForCausalLM": f"{_HOST_QWEN3_MOE}:TTQwen3MoeForCausalLM",
}

_TT_PREFIX = "TT"


def tt_architecture(hf_arch: str) -> str:
    """The TT name of a Hugging Face architecture: ``LlamaForCausalLM`` -> ``TTLlamaForCausalLM``."""
    return _TT_PREFIX + hf_arch


def current_device() -> DeviceChoice:
    """The device the platform runs on; the host device when it cannot be resolved."""
    try:
        return resolve_device()
    except DeviceSelectionError:
        return DeviceChoice.HOST


def implementations(device: DeviceChoice | None = None) -> dict[str, str]:
    """TT architecture -> ``"module:Class"`` on ``device``. On the ttnn device this imports tt-metal's
    generator module (raising :class:`~tt_vllm_plugin.models.tt_metal.generators.TTMetalUnavailable`
    if it cannot)."""
    device = device or current_device()
    if device is DeviceChoice.TTNN:
        return generators.generator_targets()
    return dict(TT_MODEL_CLASSES)


def supported_architectures(device: DeviceChoice | None = None) -> list[str]:
    """The Hugging Face architecture names that have a TT implementation on ``device``, sorted."""
    return sorted(name.removeprefix(_TT_PREFIX) for name in implementations(device))


def load_model_class(tt_arch: str, device: DeviceChoice | None = None) -> type:
    """The contract class for ``tt_arch`` (a TT name, see :func:`tt_architecture`) on ``device``."""
    device = device or current_device()
    known = implementations(device)
    target = known.get(tt_arch)
    if target is None:
        hf_arch = tt_arch.removeprefix(_TT_PREFIX)
        where = " in the installed tt-metal" if device is DeviceChoice.TTNN else ""
        raise ValueError(
            f"Architecture '{hf_arch}' has no TT implementation{where}. "
            f"Supported architectures: {', '.join(supported_architectures(device))}."
        )
    if device is DeviceChoice.TTNN:
        return tt_metal_adapter.adapter_for(generators.load_generator_class(target))
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def register_with_vllm(device: DeviceChoice | None = None) -> None:
    """Make every TT architecture on ``device`` known to vLLM's ``ModelRegistry`` (lazily, by string),
    as Tenstorrent's plugin does. Idempotent: names already registered are left alone."""
    from vllm import ModelRegistry

    known = ModelRegistry.get_supported_archs()
    for name, target in implementations(device).items():
        if name not in known:
            ModelRegistry.register_model(name, target)
