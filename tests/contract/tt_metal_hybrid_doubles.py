"""TEST DOUBLES of tt-metal's hybrid-attention generator classes, from tenstorrent/tt-metal
``models/ttt_compat/tt/generator_vllm.py`` @ 3dfeae9445a24e18e75ff2de2313c7a30bfe2bcf, on the ttt_compat
``Generator`` double (``tt_metal_doubles.TttCompatGenerator``).

What they keep of the source (written here, not copied):

- ``HybridAttentionForCausalLM``: ``_HYBRID_KV_CACHE_GROUPS_ENABLED = False``; the classmethod
  ``get_kv_cache_spec(vllm_config)`` reads ``text_config.layer_types`` (else ``hf_config.layer_types``; a
  ValueError without them or for a type other than full/sliding attention) and returns a
  ``FullAttentionSpec`` for **every** layer, keyed ``model.layers.<i>.self_attn``, with
  ``model_config.get_num_kv_heads``, ``get_head_size``, the cache block size and the model dtype (the
  sliding window is applied inside attention: vLLM zero-pads a sliding group's page table beyond the window
  while tt-metal indexes pages by absolute position); ``prefill_forward``/``decode_forward`` raise
  NotImplementedError; ``allocate_kv_cache_per_layer(specs)`` -> ``allocate_vllm_kv_cache_per_layer``:
  ``[submesh][layer][k, v]``, layers with one ``tensor_idx`` sharing the same tensors;
  ``_ensure_page_tables_per_layer`` (broadcast a lone page table only while groups are enabled),
  ``_chunk_page_tables_per_dp`` (each table split by data-parallel submesh), ``_route_per_layer_page_tables``
  (each submesh model's ``_active_page_tables_per_layer`` set for the call, removed after).
- ``GptOssForCausalLM`` (the subclass shape Gemma3 and Exaone4_5 share): ``prefill_forward(self, *args,
  page_tables_per_layer=None, **kwargs)``: with groups disabled straight to ``super().prefill_forward_text``;
  else each submesh model's ``update_persistent_per_layer_page_tables`` first, then the call with the tables
  stashed. ``decode_forward`` the same through ``super(HybridAttentionForCausalLM, self).decode_forward``.
  ``initialize_vllm_model`` asserts ``optimizations is None``; capabilities: no prefix caching, async
  decode, sample on device, ``max_device_top_k`` 32.

``RestoredHybridGptOss`` is what the base class's docstring describes and its comment says will be
restored: ``SlidingWindowSpec`` for sliding layers and groups enabled, so vLLM plans several KV cache groups
and the runner's per-layer path runs. No tt-metal release read has it (3dfeae94 has it disabled).

The submesh models stand for tt-metal's ``Transformer``: they record the per-layer tables pushed to them and
the stash each forward call saw. Nothing is computed (logits as in ``tt_metal_doubles``).
"""

from __future__ import annotations

from typing import Any

import torch
from vllm.v1.kv_cache_interface import FullAttentionSpec, SlidingWindowSpec

from tests.contract import tt_metal_doubles as doubles

KINDS = ("full_attention", "sliding_attention")


def allocate_vllm_kv_cache_per_layer(per_layer_specs, dp_model, tt_cache_path):
    """One [K, V] pair per distinct ``tensor_idx`` and submesh, reused by every layer that names it."""
    kv_cache = []
    for _ in dp_model:
        buffers: dict[int, list[torch.Tensor]] = {}
        layers = []
        for shape, dtype, tensor_idx in per_layer_specs:
            if tensor_idx not in buffers:
                buffers[tensor_idx] = [torch.zeros(shape, dtype=dtype) for _ in "kv"]
            layers.append(buffers[tensor_idx])
        kv_cache.append(layers)
    return kv_cache


class SubmeshModel:
    """Stands for one submesh's tt-metal ``Transformer``."""

    def __init__(self, num_layers: int) -> None:
        self.layers = list(range(num_layers))
        self.pushed: list[list[torch.Tensor]] = []  # update_persistent_per_layer_page_tables calls

    def update_persistent_per_layer_page_tables(self, tables: list[torch.Tensor]) -> None:
        self.pushed.append(list(tables))


class HybridGenerator(doubles.TttCompatGenerator):
    """The ttt_compat Generator double, recording which per-layer tables each submesh model had stashed
    when a forward call reached it."""

    def _stash(self) -> list[Any]:
        return [getattr(model, "_active_page_tables_per_layer", None) for model in self.model]

    def _prefill_forward_text_impl(self, *args, **kwargs):
        self.stashes.append(("prefill", self._stash()))
        return super()._prefill_forward_text_impl(*args, **kwargs)

    def decode_forward(self, *args, **kwargs):
        self.stashes.append(("decode", self._stash()))
        return super().decode_forward(*args, **kwargs)


class HybridAttentionForCausalLM(HybridGenerator):
    _HYBRID_KV_CACHE_GROUPS_ENABLED = False

    @classmethod
    def _layer_spec(cls, kind: str, common: dict[str, Any], text_config: Any) -> Any:
        return FullAttentionSpec(**common)  # the window is applied inside attention (see the docstring)

    @classmethod
    def get_kv_cache_spec(cls, vllm_config):
        model_config = vllm_config.model_config
        hf_config = model_config.hf_config
        text_config = getattr(hf_config, "text_config", hf_config)
        layer_types = getattr(text_config, "layer_types", None)
        if layer_types is None:
            raise ValueError(f"{cls.__name__}.get_kv_cache_spec needs hf_config.text_config.layer_types")
        common = dict(
            block_size=vllm_config.cache_config.block_size,
            num_kv_heads=model_config.get_num_kv_heads(vllm_config.parallel_config),
            head_size=model_config.get_head_size(),
            dtype=model_config.dtype,
        )
        specs = {}
        for index, kind in enumerate(layer_types):
            if kind not in KINDS:
                raise ValueError(f"Unsupported layer_type {kind!r} at layer {index} on {cls.__name__}")
            specs[f"model.layers.{index}.self_attn"] = cls._layer_spec(kind, common, text_config)
        return specs

    def prefill_forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must override prefill_forward")

    def decode_forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must override decode_forward")

    @property
    def cache_path(self):
        return "cache"

    def allocate_kv_cache_per_layer(self, per_layer_specs):
        self.allocations.append(list(per_layer_specs))
        return allocate_vllm_kv_cache_per_layer(per_layer_specs, self.model, self.cache_path)

    def _ensure_page_tables_per_layer(self, page_tables_per_layer, page_table):
        if (
            page_tables_per_layer is not None
            or page_table is None
            or not self._HYBRID_KV_CACHE_GROUPS_ENABLED
        ):
            return page_tables_per_layer
        return [page_table] * len(self.model[0].layers)

    def _chunk_page_tables_per_dp(self, page_tables_per_layer):
        if page_tables_per_layer is None:
            return None
        if self.data_parallel <= 1:
            return [page_tables_per_layer]
        per_submesh: list[list[Any]] = [[] for _ in range(self.data_parallel)]
        for table in page_tables_per_layer:
            for chunks, chunk in zip(per_submesh, torch.chunk(table, self.data_parallel, dim=0), strict=True):
                chunks.append(chunk)
        return per_submesh

    class _Stash:
        def __init__(self, models, per_submesh):
            self.models, self.per_submesh = models, per_submesh

        def __enter__(self):
            for model, tables in zip(self.models, self.per_submesh or (), strict=False):
                model._active_page_tables_per_layer = tables

        def __exit__(self, *_):
            if self.per_submesh is not None:
                for model in self.models:
                    model.__dict__.pop("_active_page_tables_per_layer", None)

    def _route_per_layer_page_tables(self, per_submesh):
        return self._Stash(self.model, per_submesh)


class GptOssForCausalLM(HybridAttentionForCausalLM):
    model_capabilities = {
        "supports_prefix_caching": False,
        "supports_async_decode": True,
        "supports_sample_on_device": True,
        "max_device_top_k": 32,
    }

    def _push(self, kwargs: dict[str, Any], page_tables_per_layer: Any) -> Any:
        tables = self._ensure_page_tables_per_layer(page_tables_per_layer, kwargs.get("page_table"))
        per_submesh = self._chunk_page_tables_per_dp(tables)
        if per_submesh is not None:
            for model, submesh_tables in zip(self.model, per_submesh, strict=True):
                model.update_persistent_per_layer_page_tables(submesh_tables)
        return per_submesh

    def prefill_forward(self, *args, page_tables_per_layer=None, **kwargs):
        if not self._HYBRID_KV_CACHE_GROUPS_ENABLED:
            return super().prefill_forward_text(*args, **kwargs)
        per_submesh = self._push(kwargs, page_tables_per_layer)
        with self._route_per_layer_page_tables(per_submesh):
            return super().prefill_forward_text(*args, **kwargs)

    def decode_forward(self, *args, page_tables_per_layer=None, **kwargs):
        if not self._HYBRID_KV_CACHE_GROUPS_ENABLED:
            return super(HybridAttentionForCausalLM, self).decode_forward(*args, **kwargs)
        per_submesh = self._push(kwargs, page_tables_per_layer)
        with self._route_per_layer_page_tables(per_submesh):
            return super(HybridAttentionForCausalLM, self).decode_forward(*args, **kwargs)

    @classmethod
    def initialize_vllm_model(
        cls,
        hf_config,
        mesh_device,
        max_batch_size,
        max_seq_len,
        n_layers=None,
        tt_data_parallel=1,
        optimizations: str = None,
    ):
        assert optimizations is None, "Custom optimizations are not supported for this model"
        text_config = getattr(hf_config, "text_config", hf_config)
        num_layers = n_layers or len(text_config.layer_types)
        models = [SubmeshModel(num_layers) for _ in range(tt_data_parallel)]
        generator = cls(models, [None] * tt_data_parallel, mesh_device)
        generator.allocations, generator.stashes = [], []
        return generator


class RestoredHybridGptOss(GptOssForCausalLM):
    """Groups enabled and ``SlidingWindowSpec`` for sliding layers, as the base class's docstring
    describes."""

    _HYBRID_KV_CACHE_GROUPS_ENABLED = True

    @classmethod
    def _layer_spec(cls, kind: str, common: dict[str, Any], text_config: Any) -> Any:
        if kind == "sliding_attention":
            return SlidingWindowSpec(**common, sliding_window=text_config.sliding_window)
        return FullAttentionSpec(**common)
