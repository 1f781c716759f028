"""What vLLM's ``ModelRegistry`` holds for a TT architecture that takes images.

vLLM finds an architecture's multimodal processor through the model class its registry resolves
(``MULTIMODAL_REGISTRY`` reads the class's ``_processor_factory``), both in the API server, which
preprocesses the images, and in the engine core, which budgets the encoder cache from it. For a TT
architecture whose class takes images (``contract.takes_images``) vLLM is therefore shown its own model
class for the Hugging Face architecture (``Qwen2_5_VLForConditionalGeneration`` -> vLLM's, with its
processor, its placeholder strings for chat templates and its M-RoPE marker), under the TT name. A class
that registers a processor of its own (tt-metal's do, e.g. to allow one image per prompt) keeps it. vLLM
never builds this class: the TT runner loads the real one (``registry.load_model_class``). Text-only
classes keep the plain stand-in (``vllm_stand_in.py``).
"""

from __future__ import annotations

from typing import Any

from tt_vllm_plugin.compat import multimodal as mm_compat
from tt_vllm_plugin.models.contract import takes_images


class ProcessorUnavailable(ImportError):
    """vLLM's model module for the architecture, which holds its multimodal processor, does not import."""


def multimodal_view(tt_arch: str, hf_arch: str, model_cls: type) -> type | None:
    """The class vLLM sees for ``tt_arch``, or None when ``model_cls`` takes no images or vLLM has no
    multimodal model for ``hf_arch`` (whose processor would prepare the images). Raises
    :class:`ProcessorUnavailable` when vLLM's module for it does not import (its image processors need
    torchvision, and a torchvision built for another torch fails at import with a RuntimeError)."""
    if not takes_images(model_cls):
        return None
    try:
        vllm_cls = mm_compat.vllm_multimodal_model_class(hf_arch)
    except (ImportError, RuntimeError) as error:
        raise ProcessorUnavailable(
            f"vLLM's {hf_arch}, which holds its image processor, does not import here "
            f"({type(error).__name__}: {error})"
        ) from error
    if vllm_cls is None:
        return None
    attributes: dict[str, object] = {"__module__": __name__, "__doc__": f"vLLM's view of {tt_arch}."}
    own_processor = model_cls.__dict__.get("_processor_factory")
    if own_processor is not None:
        attributes["_processor_factory"] = own_processor
    return type(tt_arch, (vllm_cls,), attributes)


def describe_resolution(model_config: Any) -> str:
    """What vLLM resolves the model's TT architecture to in this process (the runner logs it in the engine
    core, which registers the views itself)."""
    tt_arch = model_config.hf_config.architectures[0]
    resolved = mm_compat.resolved_model_class(model_config)
    base = next((cls for cls in resolved.__mro__[1:] if cls.__module__.startswith("vllm.")), None)
    if resolved.__name__ == tt_arch and base is not None:
        return f"vLLM resolves {tt_arch} to the multimodal view of its {base.__module__}.{base.__name__}"
    return f"vLLM resolves {tt_arch} to {resolved.__module__}.{resolved.__name__}, not a multimodal view"
