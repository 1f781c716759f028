"""The plan of one scheduler step: which rows prefill, which decode, and which sampler samples them.

Made from the persistent batch (already brought in line with the scheduler) before any model call;
everything after it (``prefill.py``, ``decode.py``, ``sampling.py``) only carries it out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tt_vllm_plugin.models.device_sampling import DeviceSamplingParams
from tt_vllm_plugin.worker.input_batch import TTInputBatch
from tt_vllm_plugin.worker.sampling_mode import SamplingPath, device_sampling_params

if TYPE_CHECKING:
    from vllm.v1.worker.gpu_input_batch import CachedRequestState


@dataclass(frozen=True)
class StepPlan:
    """One step, row by row (rows are the persistent batch's, in batch order)."""

    scheduled: np.ndarray  # (num_reqs,) tokens the scheduler gave each row this step
    computed: np.ndarray  # (num_reqs,) tokens of each row already in the KV cache
    ends: np.ndarray  # computed + scheduled: where each row's computed range stops
    prefill_rows: np.ndarray  # rows computing prompt (or recomputed) tokens: one batched prefill
    decode_rows: np.ndarray  # rows feeding their last token: one decode
    # Rows whose computed range stops short of their known tokens (a prompt chunk): their sampled
    # token is discarded, as vLLM's GPU runner does.
    partial_rows: np.ndarray
    # The device sampler's per-row parameters when the model samples this step; None: vLLM's sampler.
    device_sampling: DeviceSamplingParams | None

    @property
    def num_reqs(self) -> int:
        return len(self.scheduled)

    @property
    def sampling_path(self) -> SamplingPath:
        return SamplingPath.HOST if self.device_sampling is None else SamplingPath.DEVICE


def plan_step(
    batch: TTInputBatch,
    num_scheduled_tokens: Mapping[str, int],
    requests: Mapping[str, CachedRequestState],
    sampling_path: Callable[[bool], SamplingPath],
    fold_decode: bool = False,
) -> StepPlan:
    """Sort the batch's rows into prefill and decode and pick the sampler (``sampling_path(has_prefill)``).

    With ``fold_decode`` (the model's prefill takes decode rows, contract.PREFILL_TAKES_DECODE_ROWS), a
    step that prefills at all prefills every row: its decode rows are one-token rows of the same call."""
    num_reqs = batch.num_reqs
    scheduled = np.array([num_scheduled_tokens[req_id] for req_id in batch.req_ids], dtype=np.int64)
    computed = batch.num_computed_tokens_cpu[:num_reqs].astype(np.int64)
    known = batch.num_tokens_no_spec[:num_reqs].astype(np.int64)
    ends = computed + scheduled
    # A decode feeds exactly the last known token; anything else computes prompt (or, after a
    # preemption, recomputed output) tokens and goes to the batched prefill.
    is_decode = (scheduled == 1) & (ends == known) & (computed >= batch.num_prompt_tokens[:num_reqs])
    if fold_decode and not is_decode.all():
        is_decode[:] = False
    prefill_rows = np.flatnonzero(~is_decode)
    partial = ends < known
    device_sampling = None
    if sampling_path(len(prefill_rows) > 0) is SamplingPath.DEVICE:
        seeds = [requests[req_id].sampling_params.seed for req_id in batch.req_ids]
        device_sampling = device_sampling_params(batch, num_reqs, partial, seeds)
    return StepPlan(
        scheduled=scheduled,
        computed=computed,
        ends=ends,
        prefill_rows=prefill_rows,
        decode_rows=np.flatnonzero(is_decode),
        partial_rows=np.flatnonzero(partial),
        device_sampling=device_sampling,
    )
