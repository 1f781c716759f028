"""Which TT model class implements which Hugging Face architecture, on which device.

TT classes are named like Tenstorrent's: ``"TT" + <HF architecture>`` (``TTLlamaForCausalLM``). Where the
class comes from, first match winning (Tenstorrent's precedence, ``user_models.py``):

1. ``TT_MODEL_CLASS_OVERRIDES``, then 2. ``EXTRA_MODELS_DIR`` bundles (both on either device);
3. the built-in map of the device, unless ``TT_VLLM_BUILTIN_MODELS=0``: on the host device our PyTorch
   models (:data:`TT_MODEL_CLASSES`); on the ttnn device every generator class the installed tt-metal has
   (``tt_metal/inventory.py``: found in ``models.ttt_compat.tt.generator_vllm``, or ``models.tt_transformers``
   before tt-metal renamed it). tt-metal's classes no vLLM v1 plugin can serve (Mllama) are listed and
   refused by name, saying why.

On the ttnn device every class is seen through :class:`~tt_vllm_plugin.models.tt_metal.adapter.TTMetalModel`
(a class brought for Tenstorrent's plugin is a tt-metal generator too); on the host device classes are
used as they are. Everything is referenced as ``"module:Class"`` strings so nothing heavy is imported until
a model is needed. Callers that pass no device get the one the platform runs on (``TT_VLLM_DEVICE``),
falling back to the host device when that cannot be resolved (the plugin is then inactive anyway).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from tt_vllm_plugin.activation import DeviceChoice, DeviceSelectionError, resolve_device
from tt_vllm_plugin.compat import multimodal as mm_compat
from tt_vllm_plugin.models import user_models
from tt_vllm_plugin.models.tt_metal import adapter as tt_metal_adapter
from tt_vllm_plugin.models.tt_metal import generators, inventory
from tt_vllm_plugin.models.tt_metal.inventory import Served
from tt_vllm_plugin.models.user_models import UserModel

_HOST_LLAMA = "tt_vllm_plugin.models.host.llama.architectures"
_HOST_GEMMA3 = "tt_vllm_plugin.models.host.gemma3.architectures"
_HOST_GEMMA3_MM = "tt_vllm_plugin.models.host.gemma3_mm.architectures"
_HOST_QWEN3_MOE = "tt_vllm_plugin.models.host.qwen3_moe.architectures"
_HOST_GPT_OSS = "tt_vllm_plugin.models.host.gpt_oss.architectures"
_HOST_QWEN2_5_VL = "tt_vllm_plugin.models.host.qwen2_5_vl.model"

# TT architecture name -> "module:ClassName" of the host (PyTorch) implementation.
TT_MODEL_CLASSES: dict[str, str] = {
    "TTGemma3ForCausalLM": f"{_HOST_GEMMA3}:TTGemma3ForCausalLM",
    "TTGemma3ForConditionalGeneration": f"{_HOST_GEMMA3_MM}:TTGemma3ForConditionalGeneration",
    "TTGptOssForCausalLM": f"{_HOST_GPT_OSS}:TTGptOssForCausalLM",
    "TTLlamaForCausalLM": f"{_HOST_LLAMA}:TTLlamaForCausalLM",
    "TTMistralForCausalLM": f"{_HOST_LLAMA}:TTMistralForCausalLM",
    "TTQwen2ForCausalLM": f"{_HOST_LLAMA}:TTQwen2ForCausalLM",
    "TTQwen3ForCausalLM": f"{_HOST_LLAMA}:TTQwen3ForCausalLM",
    "TTQwen3MoeForCausalLM": f"{_HOST_QWEN3_MOE}:TTQwen3MoeForCausalLM",
    "TTQwen2_5_VLForConditionalGeneration": f"{_HOST_QWEN2_5_VL}:TTQwen2_5_VLForConditionalGeneration",
}

_TT_PREFIX = "TT"
BUILT_IN = "the built-in map"
# How a multimodal checkpoint whose TT class takes no images is refused (refusals.py).
TAKES_NO_IMAGES = (
    "is a multimodal model, and its TT class takes no images (it declares no supports_multimodal)"
)


def tt_architecture(hf_arch: str) -> str:
    """The TT name of a Hugging Face architecture: ``LlamaForCausalLM`` -> ``TTLlamaForCausalLM``."""
    return _TT_PREFIX + hf_arch


def current_device() -> DeviceChoice:
    """The device the platform runs on; the host device when it cannot be resolved."""
    try:
        return resolve_device()
    except DeviceSelectionError:
        return DeviceChoice.HOST


@dataclass(frozen=True)
class Resolved:
    """What a device serves (TT name -> class and where it was named) and the classes it has but refuses
    by name (TT name -> ``"module:Class"``; ``inventory.refusal_of`` says why)."""

    served: dict[str, UserModel]
    refused: dict[str, str]
    bare_names: dict[str, UserModel]  # Hugging Face names vLLM's registry must also know
    # Why the ttnn built-in map is missing when user models are served anyway (no tt-metal on the path).
    builtin_unavailable: generators.TTMetalUnavailable | None = None


def resolve(device: DeviceChoice | None = None) -> Resolved:
    """Overrides, bundles and built-ins on ``device``, by precedence. Raises
    :class:`~tt_vllm_plugin.models.user_models.UserModelError` for malformed user entries and, on the ttnn
    device with the built-in map on,
    :class:`~tt_vllm_plugin.models.tt_metal.generators.TTMetalUnavailable` without tt-metal."""
    device = device or current_device()
    user = user_models.load()
    builtin = Served(dict(TT_MODEL_CLASSES), {}, {})
    unavailable = None
    if not user.builtin_enabled:
        builtin = Served({}, {}, {})
    elif device is DeviceChoice.TTNN:
        try:
            builtin = generators.served_targets()
        except generators.TTMetalUnavailable as error:
            if not user.served():
                raise
            builtin, unavailable = Served({}, {}, {}), error  # the user's classes may not need it
    served = {name: UserModel(target, BUILT_IN) for name, target in builtin.text.items()} | user.served()
    refused = {name: target for name, target in builtin.refused.items() if name not in served}
    bare = {name: UserModel(target, BUILT_IN) for name, target in builtin.bare_names.items()}
    return Resolved(served, refused, bare | user.bare_names, unavailable)


def implementations(device: DeviceChoice | None = None) -> dict[str, str]:
    """TT architecture -> ``"module:Class"`` served on ``device`` (see :func:`resolve`)."""
    return {name: model.target for name, model in resolve(device).served.items()}


def supported_architectures(device: DeviceChoice | None = None) -> list[str]:
    """The Hugging Face architecture names that have a TT implementation on ``device``, sorted."""
    return sorted(name.removeprefix(_TT_PREFIX) for name in implementations(device))


def refused_architectures(device: DeviceChoice | None = None) -> list[str]:
    """The architectures of tt-metal's classes ``device`` has but refuses by name, sorted."""
    return sorted(name.removeprefix(_TT_PREFIX) for name in resolve(device).refused)


def load_model_class(tt_arch: str, device: DeviceChoice | None = None) -> type:
    """The contract class for ``tt_arch`` (a TT name, see :func:`tt_architecture`) on ``device``."""
    device = device or current_device()
    resolved = resolve(device)
    hf_arch = tt_arch.removeprefix(_TT_PREFIX)
    model = resolved.served.get(tt_arch)
    if model is None:
        if resolved.builtin_unavailable is not None:
            raise resolved.builtin_unavailable
        if tt_arch in resolved.refused:
            raise ValueError(_refusal(hf_arch, resolved))
        where = " in the installed tt-metal" if device is DeviceChoice.TTNN else ""
        supported = ", ".join(sorted(name.removeprefix(_TT_PREFIX) for name in resolved.served))
        raise ValueError(
            f"Architecture '{hf_arch}' has no TT implementation{where}. "
            f"Supported architectures: {supported or 'none'}."
        )
    cls = _import(model)
    return tt_metal_adapter.adapter_for(cls) if device is DeviceChoice.TTNN else cls


def _refusal(hf_arch: str, resolved: Resolved) -> str:
    """Why a class the installed tt-metal has is refused, and what the device serves instead."""
    target = resolved.refused[tt_architecture(hf_arch)]
    served = {name.removeprefix(_TT_PREFIX) for name in resolved.served}
    images = [arch for arch in inventory.image_architectures() if arch in served]
    instead = ["a text Llama (LlamaForCausalLM)"] if "LlamaForCausalLM" in served else []
    if images:
        instead.append(f"an image model the installed tt-metal serves ({', '.join(images)})")
    return f"{hf_arch} cannot be served: {inventory.refusal_of(hf_arch)} (tt-metal's {target})." + (
        f" Serve {' or '.join(instead)} instead." if instead else ""
    )


def _import(model: UserModel) -> type:
    module_name, class_name = model.target.split(":")
    if model.origin == BUILT_IN:
        return getattr(importlib.import_module(module_name), class_name)
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise ValueError(
            f"{model.origin}: cannot load {model.target} ({type(error).__name__}: {error})."
        ) from error
    if not isinstance(cls, type):
        raise ValueError(f"{model.origin}: {model.target} is a {type(cls).__name__}, not a class.")
    return cls


# Names this process registered with vLLM (to the stand-in), so repeated calls stay quiet.
_registered_with_vllm: set[str] = set()
# TT names that take images but whose multimodal view could not be built here -> why (the platform
# refuses to serve them with that reason; every other model is served as usual).
_views_unavailable: dict[str, str] = {}


def multimodal_view_unavailable(tt_arch: str) -> str | None:
    """Why vLLM could not be shown its multimodal class for ``tt_arch`` in this process, or None."""
    return _views_unavailable.get(tt_arch)


def register_with_vllm(device: DeviceChoice | None = None) -> None:
    """Make every TT architecture served on ``device``, and the bare names of overrides, known to vLLM's
    ``ModelRegistry``, as Tenstorrent's plugin does. vLLM is shown one stand-in class for all of them
    (``vllm_stand_in.py``: vLLM refuses a contract class as "not a generation model"); the runner loads the
    real class from here. Idempotent."""
    from vllm import ModelRegistry

    from tt_vllm_plugin.models.vllm_stand_in import TTModelForVllm

    resolved = resolve(device)
    for name in [*resolved.served, *resolved.bare_names]:
        if name not in _registered_with_vllm:
            ModelRegistry.register_model(name, _vllm_view(name, resolved, device) or TTModelForVllm)
            _registered_with_vllm.add(name)


def _vllm_view(name: str, resolved: Resolved, device: DeviceChoice | None) -> type | None:
    """vLLM's own multimodal class for a served TT name whose class takes images (it carries the
    architecture's processor; ``vllm_multimodal_view.py``), else None. Only architectures vLLM knows as
    multimodal load their TT class here."""
    from tt_vllm_plugin.models.vllm_multimodal_view import ProcessorUnavailable, multimodal_view

    hf_arch = name.removeprefix(_TT_PREFIX)
    if name not in resolved.served or not mm_compat.is_vllm_multimodal_architecture(hf_arch):
        return None
    try:
        return multimodal_view(name, hf_arch, load_model_class(name, device))
    except ProcessorUnavailable as error:  # e.g. no torchvision: text models are still served
        _views_unavailable[name] = str(error)
        return None
