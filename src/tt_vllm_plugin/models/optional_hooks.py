"""The contract's optional hooks, called on any model that offers them: tt-metal's generators do (through
the adapter, ``tt_metal/adapter.py``), the host models offer none, so nothing changes there.

- ``get_max_tokens_all_users``: the model's own KV budget (:func:`kv_token_budget`);
- ``warmup_model_prefill`` / ``warmup_model_decode``: compile kernels and capture traces (:func:`warm_up`);
- ``read_decode_output`` / ``process_decode_output_host``: the async decode read
  (:func:`async_read_problem` says whether a model's pair is the one the runner uses);
- ``allocate_kv_cache_per_layer`` (and the classmethod ``get_kv_cache_spec``): the KV cache of a hybrid
  attention model (``worker/kv_cache_layout.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tt_vllm_plugin.models.contract import KVCache
from tt_vllm_plugin.models.device_sampling import device_max_top_k
from tt_vllm_plugin.models.tt_metal.signatures import accepts, call_with_accepted

# Optional generator methods the adapter forwards when (and only when) the generator has them.
OPTIONAL_HOOKS = ("get_max_tokens_all_users", "warmup_model_prefill", "warmup_model_decode")
# Read the output of decode_forward(read_from_device=False) (capability supports_async_decode).
ASYNC_DECODE_HOOKS = ("read_decode_output", "process_decode_output_host")
# Per-layer KV buffers, shared by tensor_idx (worker/kv_cache_layout.py: hybrid attention models).
KV_CACHE_HOOKS = ("allocate_kv_cache_per_layer",)


@dataclass(frozen=True)
class TraceFlags:
    prefill: bool
    decode: bool


def trace_flags(trace_mode: str) -> TraceFlags:
    """Which calls run as device traces: "all" both, "decode_only" decode, "none" neither."""
    return TraceFlags(prefill=trace_mode == "all", decode=trace_mode in ("all", "decode_only"))


def async_read_problem(model: Any) -> str | None:
    """Why ``model`` (a model or generator class, or an instance) cannot do the runner's async decode
    read, or None if it can.

    The runner queues the read with ``read_decode_output(out, async_read=True)`` (-> host output and
    events) and finishes it with ``process_decode_output_host``. Older tt-metal generators read and
    process in one blocking ``read_decode_output(tt_out, unpadded_batch, is_tokens)``.
    """
    read = getattr(model, "read_decode_output", None)
    if read is None:
        return "it declares supports_async_decode but has no read_decode_output"
    if not accepts(read, "async_read"):
        return "its read_decode_output takes no async_read (an older tt-metal release)"
    if not hasattr(model, "process_decode_output_host"):
        return "it declares supports_async_decode but has no process_decode_output_host"
    return None


def kv_token_budget(
    model: Any,
    *,
    model_name: str,
    num_devices: int,
    max_model_len: int,
    max_num_seqs: int,
    tt_data_parallel: int = 1,
) -> int | None:
    """The model's own KV budget in tokens across all users (``get_max_tokens_all_users``), or None.
    Offered the keywords Tenstorrent's worker passes (vllm-tt-plugin e3fc849 worker.py
    ``get_num_available_blocks_tt``); tt-metal's classes take them through ``**kwargs``."""
    hook = getattr(model, "get_max_tokens_all_users", None)
    if hook is None:
        return None
    offered = {
        "model_name": model_name,
        "num_devices": num_devices,
        "tt_data_parallel": tt_data_parallel,
        "max_model_len": max_model_len,
        "max_num_seqs": max_num_seqs,
    }
    tokens = int(call_with_accepted(hook, offered))
    if tokens < 1:
        raise ValueError(f"{type(model).__name__}.get_max_tokens_all_users returned {tokens}; need >= 1.")
    return tokens


@dataclass(frozen=True)
class WarmUpOffer:
    """What one warm-up hook is offered (call_with_accepted passes what its release takes)."""

    offered: dict[str, Any]
    named_only: frozenset[str]


# Warm-up arguments only some tt-metal releases know: warmup_model_prefill/decode's
# ``non_greedy_decoding_on_device`` (generator.py at 421a32c1, models/common/warmup/warmup_utils.py at
# 9f66942977ee00fda5b43291527cf5d8ee6d7a1d), ``greedy_only`` (the newest warmup_utils.py; the ttt_compat
# layout's warmup_model_prefill, models/ttt_compat/tt/generator.py at
# 1a6b64e03908f3ef0493692a2a6017f74ae06796),
# DecodeWarmupMixin's ``num_gpu_blocks`` and ``sample_on_device_mode`` (models/common/warmup/
# decode_warmup.py at 276fab7c586c357e51ed201c420028ba378210b6).
_PREFILL_NAMED_ONLY = frozenset({"non_greedy_decoding_on_device", "greedy_only"})
_DECODE_NAMED_ONLY = _PREFILL_NAMED_ONLY | {"num_gpu_blocks", "sample_on_device_mode"}


def warm_up_offers(
    model: Any, kv_cache: KVCache, max_batch_size: int, num_blocks: int, sample_on_device_mode: str | None
) -> tuple[WarmUpOffer, WarmUpOffer]:
    """The prefill and decode warm-up arguments (without ``enable_trace``).

    As Tenstorrent's ``warmup_model`` (vllm-tt-plugin e3fc849 model_runner.py): prefill prepares device
    sampling only for mode "all" (prefill samples on the device only then), decode for "all" and
    "decode_only". ``sample_on_device_mode`` is None unless the runner may ask the model to sample.
    Random sampling is warmed up too unless the model is greedy-only (``max_device_top_k`` 0).
    """
    prefill_samples = sample_on_device_mode == "all"
    decode_samples = sample_on_device_mode in ("all", "decode_only")
    random_ok = device_max_top_k(model) > 0
    prefill = {
        "kv_cache": kv_cache,
        "can_sample_on_device": prefill_samples,
        "non_greedy_decoding_on_device": prefill_samples and random_ok,
        "greedy_only": prefill_samples and not random_ok,
    }
    decode = {
        "kv_cache": kv_cache,
        "max_batch_size": max_batch_size,
        "num_blocks": num_blocks,
        "can_sample_on_device": decode_samples,
        "non_greedy_decoding_on_device": decode_samples and random_ok,
        "greedy_only": decode_samples and not random_ok,
        "num_gpu_blocks": num_blocks,
        "sample_on_device_mode": sample_on_device_mode if decode_samples else None,
    }
    return WarmUpOffer(prefill, _PREFILL_NAMED_ONLY), WarmUpOffer(decode, _DECODE_NAMED_ONLY)


def _rearm_prefill_warm_up(model: Any) -> None:
    """tt-metal's Generator runs its prefill warm-up once (``already_warmed_up_prefill``); clear the flag
    so the trace-capture phase runs it again, as Tenstorrent's runner does."""
    target = getattr(model, "__dict__", {}).get("generator", model)
    if hasattr(target, "already_warmed_up_prefill"):
        target.already_warmed_up_prefill = False


def warm_up(
    model: Any,
    *,
    kv_cache: KVCache,
    trace: TraceFlags,
    max_batch_size: int,
    num_blocks: int,
    sample_on_device_mode: str | None = None,
) -> bool:
    """Run the model's warm-up hooks if it has any; True if one ran.

    Two phases, as Tenstorrent's ``warmup_model``: every hook untraced first (all kernels compiled),
    then, for what ``trace`` traces, again with ``enable_trace=True`` to capture the traces, so no
    compilation allocates behind a captured trace (tt-metal 5043de3df5, cited there). ``num_blocks`` is
    the decode page table's width, which the captured trace keeps.
    """
    prefill = getattr(model, "warmup_model_prefill", None)
    decode = getattr(model, "warmup_model_decode", None)
    if prefill is None and decode is None:
        return False
    prefill_offer, decode_offer = warm_up_offers(
        model, kv_cache, max_batch_size, num_blocks, sample_on_device_mode
    )
    phases = [(False, True, True), (True, trace.prefill, trace.decode)]
    for enable_trace, run_prefill, run_decode in phases:
        if prefill is not None and run_prefill:
            _run_warm_up(prefill, prefill_offer, enable_trace)
        if decode is not None and run_decode:
            _run_warm_up(decode, decode_offer, enable_trace)
        if not enable_trace:
            _rearm_prefill_warm_up(model)
    return True


def _run_warm_up(hook: Callable[..., Any], offer: WarmUpOffer, enable_trace: bool) -> None:
    call_with_accepted(hook, {**offer.offered, "enable_trace": enable_trace}, offer.named_only)
