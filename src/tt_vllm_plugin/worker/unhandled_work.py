"""Work a scheduler step may ask of a runner that the TT runner does not do: fail loudly, not skip it.

vLLM's GPU runner zeroes freshly allocated KV blocks (``new_block_ids_to_zero``) and applies
copy-on-write block copies (``kv_cache_block_copies``) before the forward pass. vLLM 0.32's scheduler
fills them only for KV layouts the TT runner never builds: zeroing for Mamba layers or mixed-precision
caches (``KVCacheConfig.needs_kv_cache_zeroing``), copies for partial prefix-cache hits, which need
Mamba "align" hashing (``KVCacheCoordinator.enable_partial_hash_hits``). The tt platform asks for one
full-attention cache in the model's dtype, so both stay None. Should a future vLLM fill them for that
layout too, ignoring them would read stale KV blocks: a wrong answer with no error. vLLM 0.25.1 has
only ``new_block_ids_to_zero``; ``kv_cache_block_copies`` exists from 0.26.0 (see
``compat.scheduler_output_field``).
"""

from __future__ import annotations

from typing import Any

from tt_vllm_plugin.compat import scheduler_output_field

UNHANDLED_FIELDS = {
    "new_block_ids_to_zero": "zero freshly allocated KV blocks",
    "kv_cache_block_copies": "copy KV blocks (copy-on-write for partial prefix-cache hits)",
}


class UnhandledSchedulerWork(RuntimeError):
    pass


def check_no_unhandled_work(scheduler_output: Any) -> None:
    """Raise if the step asks for block zeroing or block copies."""
    asked = [
        f"{name} ({what}: {len(value)} given)"
        for name, what in UNHANDLED_FIELDS.items()
        if (value := scheduler_output_field(scheduler_output, name))
    ]
    if asked:
        raise UnhandledSchedulerWork(
            "The scheduler asked the TT runner for work it does not implement: " + "; ".join(asked) + ". "
            "This KV cache layout is not supported on the tt platform; please report it with the model "
            "and engine arguments."
        )
