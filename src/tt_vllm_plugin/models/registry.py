"""Which TT model class implements which Hugging Face architecture.

TT classes are named like Tenstorrent's: ``"TT" + <HF architecture>`` (``TTLlamaForCausalLM``), and
are referenced as ``"module:ClassName"`` strings so nothing heavy is imported until a model is built.
"""

from __future__ import annotations

import importlib

_HOST_LLAMA = "tt_vllm_plugin.models.llama"

# TT architecture name -> "module:ClassName". Host (PyTorch) implementations for now; tt-metal's
# generator classes (models.tt_transformers.tt.generator_vllm) get registered here later, keyed the
# same way, when running on Tenstorrent hardware.
TT_MODEL_CLASSES: dict[str, str] = {
    "TTLlamaForCausalLM": f"{_HOST_LLAMA}:TTLlamaForCausalLM",
    "TTMistralForCausalLM": f"{_HOST_LLAMA}:TTMistralForCausalLM",
    "TTQwen2ForCausalLM": f"{_HOST_LLAMA}:TTQwen2ForCausalLM",
    "TTQwen3ForCausalLM": f"{_HOST_LLAMA}:TTQwen3ForCausalLM",
}

_TT_PREFIX = "TT"


def tt_architecture(hf_arch: str) -> str:
    """The TT name of a Hugging Face architecture: ``LlamaForCausalLM`` -> ``TTLlamaForCausalLM``."""
    return _TT_PREFIX + hf_arch


def supported_architectures() -> list[str]:
    """The Hugging Face architecture names that have a TT implementation, sorted."""
    return sorted(name.removeprefix(_TT_PREFIX) for name in TT_MODEL_CLASSES)


def load_model_class(tt_arch: str) -> type:
    """Import and return the class registered for ``tt_arch`` (a TT name, see :func:`tt_architecture`)."""
    target = TT_MODEL_CLASSES.get(tt_arch)
    if target is None:
        hf_arch = tt_arch.removeprefix(_TT_PREFIX)
        raise ValueError(
            f"Architecture '{hf_arch}' has no TT implementation. "
            f"Supported architectures: {', '.join(supported_architectures())}."
        )
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def register_with_vllm() -> None:
    """Make every TT architecture known to vLLM's ``ModelRegistry`` (lazily, by string). Idempotent:
    names already registered are left alone."""
    from vllm import ModelRegistry

    known = ModelRegistry.get_supported_archs()
    for name, target in TT_MODEL_CLASSES.items():
        if name not in known:
            ModelRegistry.register_model(name, target)
