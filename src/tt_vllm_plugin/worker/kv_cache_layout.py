"""The KV cache's layout: the spec vLLM plans with, what a block of the pool costs, and, from the plan vLLM
returns (``KVCacheConfig``), each layer's KV cache group and buffer.

- **Spec**: the model class's own ``get_kv_cache_spec(vllm_config)`` classmethod when it has one, else one
  ``FullAttentionSpec`` per layer from the config. tt-metal's hybrid models have the hook
  (``HybridAttentionForCausalLM``, tenstorrent/tt-metal ``models/ttt_compat/tt/generator_vllm.py`` @
  3dfeae9445a24e18e75ff2de2313c7a30bfe2bcf) and return a ``FullAttentionSpec`` for every layer on purpose:
  vLLM zero-pads a sliding-window group's page table beyond the window while tt-metal indexes pages by
  absolute position, so the window is applied inside attention instead.
- **Groups**: more than one only when the spec mixes attention types and vLLM's hybrid KV cache manager is
  on (the platform supports it). Then each layer is mapped to its group by the index in its name
  (``...layers.<i>...``), the model gets one page table per layer (``page_tables_per_layer``), and layers
  vLLM lays out in the same bytes share one buffer (``tensor_idx`` of ``allocate_kv_cache_per_layer``).
  This is what Tenstorrent's runner does (tenstorrent/vllm-tt-plugin ``src/vllm_tt_plugin/model_runner.py``
  @ e3fc84941bf7a1d0df32aae2c50d539259c925f0: ``_parse_layer_index``, ``initialize_kv_cache``,
  ``_block_tables_per_layer``, ``_build_per_layer_specs``, ``_allocate_kv_caches``; ``worker.py``
  ``get_kv_cache_spec``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch
from vllm.v1.kv_cache_interface import (
    FullAttentionSpec,
    KVCacheConfig,
    KVCacheSpec,
    UniformTypeKVCacheSpecs,
)

from tt_vllm_plugin.compat import kv_cache_buffers, kv_cache_planner

# "model.layers.5.self_attn", "model.language_model.layers.5.self_attn", "layers.5" (TT's convention).
_LAYER_NAME = re.compile(r"(?:^|\.)layers\.(\d+)(?:\.|$)")

KVShape = tuple[int, int, int, int]  # (num_blocks, kv heads per device, block_size, head_dim)
PerLayerSpec = tuple[KVShape, torch.dtype, int]  # (shape, dtype, tensor_idx), as allocate_kv_cache_per_layer


def layer_name(index: int) -> str:
    return f"model.layers.{index}.self_attn"


def layer_index(name: str) -> int:
    match = _LAYER_NAME.search(name)
    if match is None:
        raise ValueError(
            f"KV cache layer name {name!r} names no layer index; use the '...layers.<index>...' convention "
            "(e.g. 'model.layers.0.self_attn')."
        )
    return int(match.group(1))


def kv_cache_spec(
    model_cls: type, vllm_config: Any, default: Callable[[], dict[str, KVCacheSpec]]
) -> dict[str, KVCacheSpec]:
    """The model class's ``get_kv_cache_spec(vllm_config)`` if it has one and it answers, else
    ``default()``."""
    hook = getattr(model_cls, "get_kv_cache_spec", None)
    spec = hook(vllm_config) if hook is not None else None
    if spec is None:
        return default()
    if not isinstance(spec, dict) or not all(
        isinstance(name, str) and isinstance(value, KVCacheSpec) for name, value in spec.items()
    ):
        raise TypeError(
            f"{model_cls.__name__}.get_kv_cache_spec() returned {type(spec).__name__}; the contract wants "
            "dict[str, KVCacheSpec] (layer name -> spec) or None."
        )
    return spec


def full_attention_spec(
    num_layers: int, block_size: int, num_kv_heads: int, head_size: int, dtype: torch.dtype
) -> dict[str, KVCacheSpec]:
    """One ``FullAttentionSpec`` per layer (the model's KV heads: the allocation is per device)."""
    spec = FullAttentionSpec(
        block_size=block_size, num_kv_heads=num_kv_heads, head_size=head_size, dtype=dtype
    )
    return {layer_name(i): spec for i in range(num_layers)}


def _layer_specs(group: Any) -> dict[str, KVCacheSpec]:
    spec = group.kv_cache_spec
    if isinstance(spec, UniformTypeKVCacheSpecs):  # one group, layers of different shapes
        return dict(spec.kv_cache_specs)
    return dict.fromkeys(group.layer_names, spec)


def bytes_per_block(vllm_config: Any, spec: dict[str, KVCacheSpec]) -> int:
    """What vLLM's planner divides the pool's bytes by to count blocks: the largest group's page bytes
    over its layers (vLLM ``get_kv_cache_config_from_groups``; groups overlay each other)."""
    groups = kv_cache_planner().get_kv_cache_groups(vllm_config, dict(spec))
    return max(sum(s.page_size_bytes for s in _layer_specs(group).values()) for group in groups)


def layer_groups(kv_cache_config: KVCacheConfig, num_layers: int) -> list[int] | None:
    """The KV cache group of each layer, or None with one group (the model then gets one page table)."""
    groups = kv_cache_config.kv_cache_groups
    if len(groups) < 2:
        return None
    mapping: list[int | None] = [None] * num_layers
    for group_index, group in enumerate(groups):
        for name in group.layer_names:
            mapping[_checked_index(name, num_layers)] = group_index
    missing = [i for i, group in enumerate(mapping) if group is None]
    if missing:
        raise ValueError(f"No KV cache group holds layers {missing}; every attention layer needs one.")
    return [int(group) for group in mapping if group is not None]


def per_layer_specs(
    kv_cache_config: KVCacheConfig, num_layers: int, shape: Callable[[KVCacheSpec], KVShape]
) -> list[PerLayerSpec]:
    """``(shape, dtype, tensor_idx)`` per layer in layer order; layers vLLM lays out in the same bytes get
    the same ``tensor_idx`` (the smallest layer index among them), every other layer its own index."""
    spec_of: dict[str, KVCacheSpec] = {}
    for group in kv_cache_config.kv_cache_groups:
        spec_of.update(_layer_specs(group))
    buffer_of = {
        name: min(_checked_index(n, num_layers) for n in names)
        for names in kv_cache_buffers(kv_cache_config)
        for name in names
    }
    result: list[PerLayerSpec | None] = [None] * num_layers
    for name, spec in spec_of.items():
        index = _checked_index(name, num_layers)
        result[index] = (shape(spec), spec.dtype, buffer_of.get(name, index))
    missing = [i for i, entry in enumerate(result) if entry is None]
    if missing:
        raise ValueError(f"vLLM's KV cache plan has no spec for layers {missing}.")
    return [entry for entry in result if entry is not None]


def _checked_index(name: str, num_layers: int) -> int:
    index = layer_index(name)
    if not 0 <= index < num_layers:
        raise ValueError(
            f"KV cache layer {name!r}: index {index} is not one of the model's {num_layers} layers."
        )
    return index


def allocate(model: Any, specs: list[PerLayerSpec]) -> Any:
    """``allocate_kv_cache_per_layer(specs)`` where the model has it (layers with one ``tensor_idx`` share a
    buffer), else the contract's ``allocate_kv_cache(shape, dtype, num_layers)``, which needs one shape."""
    per_layer = getattr(model, "allocate_kv_cache_per_layer", None)
    if per_layer is not None:
        return per_layer(specs)
    shape, dtype, _ = specs[0]
    if any((s, d) != (shape, dtype) for s, d, _ in specs) or len({idx for *_, idx in specs}) < len(specs):
        raise NotImplementedError(
            f"{type(model).__name__} has only allocate_kv_cache(shape, dtype, num_layers), but its layers "
            "need different KV shapes or share buffers: hybrid attention models implement "
            "allocate_kv_cache_per_layer([(shape, dtype, tensor_idx), ...])."
        )
    return model.allocate_kv_cache(shape, dtype, len(specs))
