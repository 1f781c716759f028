"""vLLM features the TT runner cannot honour, refused before the engine starts.

A configuration that starts and then dies on the first request (or silently does something else than
asked) costs an operator far more than an error at start-up naming the option to change. Each rule
here names the flag (or ``LLM(...)`` argument) to remove and why; ``TTPlatform.check_and_update_config``
calls them, :func:`reject_unsupported` before anything is rewritten and
:func:`reject_unsupported_caching` after prefix caching has been gated on the model's capabilities.
"""

from __future__ import annotations

from typing import Any

from tt_vllm_plugin import compat
from tt_vllm_plugin.activation import DeviceChoice
from tt_vllm_plugin.models.contract import takes_images
from tt_vllm_plugin.models.registry import TAKES_NO_IMAGES, multimodal_view_unavailable
from tt_vllm_plugin.options import TTOptions

PREFIX = "Not supported on the tt platform: "
# The --kv-cache-dtype that keeps the KV cache in the model's own dtype (what the runner allocates); the
# model's dtype spelled out (e.g. float32) is accepted too.
_MODEL_DTYPE_CACHE = "auto"


class UnsupportedConfiguration(ValueError):
    pass


def reject_unsupported(vllm_config: Any) -> None:
    """Refuse features the TT runner cannot honour, naming the option to change (all at once)."""
    problems = [*_parallelism(vllm_config), *_features(vllm_config), *_model_kind(vllm_config)]
    if problems:
        raise UnsupportedConfiguration(PREFIX + "; ".join(problems) + ".")


def reject_unsupported_caching(vllm_config: Any, device: DeviceChoice, options: TTOptions) -> None:
    """Prefix caching across data-parallel submeshes: each tt-metal submesh owns its own KV pool
    (``allocate_vllm_kv_cache`` allocates one per submesh), but vLLM's prefix cache is one pool of
    block ids, so a request could be given cached blocks its submesh never wrote. Checked after the
    model's capabilities have gated prefix caching (a model without it has it turned off already)."""
    caching = vllm_config.cache_config.enable_prefix_caching
    if device is DeviceChoice.TTNN and caching and options.data_parallel > 1:
        raise UnsupportedConfiguration(
            f"{PREFIX}prefix caching with TT option data_parallel={options.data_parallel} (each "
            "data-parallel submesh keeps its own KV cache, so a cached block may be on another submesh): "
            "pass --no-enable-prefix-caching (LLM(enable_prefix_caching=False)) or data_parallel 1."
        )


def _parallelism(vllm_config: Any) -> list[str]:
    parallel = vllm_config.parallel_config
    if parallel.tensor_parallel_size > 1 or parallel.pipeline_parallel_size > 1:
        return [
            "tensor/pipeline parallelism through vLLM (the TT model shards itself over the mesh): "
            "remove --tensor-parallel-size/--pipeline-parallel-size"
        ]
    return []


def _features(vllm_config: Any) -> list[str]:
    problems = []
    if vllm_config.speculative_config is not None:
        problems.append("speculative decoding: remove --speculative-config")
    if vllm_config.lora_config is not None:
        problems.append("LoRA adapters: remove --enable-lora")
    if vllm_config.kv_transfer_config is not None:
        # The runner neither saves nor loads KV through a connector, so a disaggregated set-up would
        # silently recompute everything on each side.
        problems.append("KV transfer (disaggregated prefill, KV offloading): remove --kv-transfer-config")
    model_config = vllm_config.model_config
    if model_config is not None and model_config.logits_processors and not compat.vllm_v1_runner_parts():
        # The plugin's host sampler (vLLM 0.34 removed the V1 sampler they plug into) has no hook for them.
        problems.append(
            "custom logits processors on a vLLM without Model Runner V1's sampler (0.34 and later; the "
            "tt platform samples with its own host sampler there): remove --logits-processors"
        )
    if model_config is not None and model_config.enable_prompt_embeds:
        # Tenstorrent's contract takes token ids; an embeddings prompt would kill the engine core.
        problems.append("prompt embeddings (the TT models take token ids): remove --enable-prompt-embeds")
    cache_dtype = str(vllm_config.cache_config.cache_dtype)
    if cache_dtype != _MODEL_DTYPE_CACHE and cache_dtype != _dtype_name(model_config):
        # The runner allocates the KV cache in the model's dtype (tt-metal converts to its own device
        # format), so any other storage type would be silently ignored.
        problems.append(
            f"--kv-cache-dtype {cache_dtype} (the KV cache is kept in the model's dtype, "
            f"{_dtype_name(model_config)}; tt-metal picks its own device format): remove --kv-cache-dtype "
            "or pass auto"
        )
    return problems


# What vLLM's V1 sampler does that the plugin's host sampler does not (SamplingParams field -> what).
HOST_SAMPLER_UNSUPPORTED = {
    "thinking_token_budget": "a thinking token budget",
    "logprob_token_ids": "logprobs of chosen token ids",
}


def host_sampler_refusal(params: Any) -> str | None:
    """Why a request cannot be sampled where the runner uses the plugin's host sampler (a vLLM without
    Model Runner V1: 0.34), or None (always None on a vLLM with its V1 sampler)."""
    if compat.vllm_v1_runner_parts():
        return None
    for name, what in HOST_SAMPLER_UNSUPPORTED.items():
        if getattr(params, name, None) is not None:
            return (
                f"{name} ({what}) is not supported on the tt platform with this vLLM (no Model Runner V1 "
                "sampler since 0.34; the platform samples with its own host sampler); remove it from the "
                "request."
            )
    return None


def _dtype_name(model_config: Any) -> str:
    """``torch.float32`` -> ``float32``, the spelling --kv-cache-dtype uses."""
    return "unknown" if model_config is None else str(model_config.dtype).removeprefix("torch.")


def _model_kind(vllm_config: Any) -> list[str]:
    model_config = vllm_config.model_config
    if model_config is None:
        return []
    problems = []
    if model_config.runner_type != "generate":
        problems.append(f"the '{model_config.runner_type}' runner: only text generation is supported")
    if model_config.is_encoder_decoder:
        problems.append("encoder-decoder models")
    return problems


def reject_multimodal_without_images(model_config: Any, model_cls: type) -> None:
    """A checkpoint vLLM knows as multimodal needs a TT class that takes images (``contract.takes_images``);
    checked once the architecture is rewritten to its TT class."""
    if getattr(model_config, "is_multimodal_model", False) and not takes_images(model_cls):
        arch = model_cls.__name__.removeprefix("TT")
        raise UnsupportedConfiguration(f"{PREFIX}{arch} {TAKES_NO_IMAGES}.")


def reject_images_without_processor(tt_arch: str) -> None:
    """A class that takes images needs vLLM's processor for its architecture, which needs torchvision."""
    why = multimodal_view_unavailable(tt_arch)
    if why is not None:
        import torch

        raise UnsupportedConfiguration(
            f"{PREFIX}{tt_arch} takes images, and {why}. vLLM's image processors need torchvision: "
            f"install the torchvision release built for this torch ({torch.__version__}); "
            "see 'Images' in docs/models/index.md."
        )
