"""A step's decode: one ``decode_forward`` over the model's fixed decode slots, and its async read.

Each decode row is fed in its request's slot (``decode_slots.py``); the call is padded to
``max_batch`` slots, empty ones with start position -1. With async decode (``supports_async_decode``)
the output stays on the device when ``execute_model`` returns, its read to the host already queued,
and the step waits for it only when it is finished (``step_output.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tt_vllm_plugin.log import get_logger
from tt_vllm_plugin.models.contract import SUPPORTS_ASYNC_DECODE, capability
from tt_vllm_plugin.models.optional_hooks import async_read_problem
from tt_vllm_plugin.worker.decode_slots import DecodeLayout
from tt_vllm_plugin.worker.metrics import StepMetrics
from tt_vllm_plugin.worker.step_data import DecodeRead, RowOutputs, StepContext
from tt_vllm_plugin.worker.step_plan import StepPlan

logger = get_logger(__name__)


def run_decode(
    ctx: StepContext,
    plan: StepPlan,
    outputs: RowOutputs,
    layout: DecodeLayout,
    max_batch: int,
    async_read: bool,
) -> DecodeRead | None:
    """Decode ``plan.decode_rows`` into ``outputs``, or with ``async_read`` return the read under way."""
    rows = plan.decode_rows
    if not len(rows):
        return None
    req_ids = [ctx.batch.req_ids[row] for row in rows]
    slots = ctx.slots.of(req_ids)
    inputs = ctx.batch.decode_inputs(rows, max_batch, slots)
    extra: dict[str, Any] = {}
    reset_batch = layout.reset_batch(slots, req_ids, device_sampled=plan.device_sampling is not None)
    if plan.device_sampling is not None:
        params = plan.device_sampling.select(torch.from_numpy(rows))
        extra = {
            "sampling_params": params.padded(max_batch, torch.from_numpy(slots)),
            "reset_batch": reset_batch,
        }
    if async_read:
        extra["read_from_device"] = False
    if ctx.rope_deltas is not None:  # M-RoPE: every request's delta from its prefill, by slot
        ctx.rope_deltas.keep_only(ctx.requests)
        extra["rope_deltas_all_users"] = ctx.rope_deltas.for_slots(req_ids, slots.tolist(), max_batch)
    if ctx.layer_groups is not None:  # hybrid attention: each layer's own group's blocks, per slot
        extra["page_tables_per_layer"] = ctx.batch.page_tables_per_layer(rows, slots, ctx.layer_groups)
    with ctx.metrics.model_call("decode", len(rows)):
        out = ctx.model.decode_forward(
            inputs.tokens, inputs.start_pos, inputs.page_table, ctx.kv_cache, **extra
        )
        if async_read:
            return start_decode_read(ctx.model, out, rows, slots)
    outputs.put_decode(rows, slots, out)
    return None


def start_decode_read(model: Any, out: Any, rows: np.ndarray, slots: np.ndarray) -> DecodeRead:
    """Queue the read of an async decode's output behind it on the device."""
    read = model.read_decode_output(out, async_read=True)
    if not (isinstance(read, tuple) and len(read) == 2):
        raise TypeError(
            f"{type(model).__name__}.read_decode_output(out, async_read=True) returned "
            f"{type(read).__name__}; the contract wants a (host output, events) pair."
        )
    host, events = read
    return DecodeRead(host, list(events or ()), rows, slots)


def finish_decode_read(
    model: Any, device: Any, read: DecodeRead, outputs: RowOutputs, metrics: StepMetrics
) -> None:
    """Wait for an async decode's output (on ``device``'s events) and put it in ``outputs``."""
    with metrics.model_wait():
        device.wait_for_events(read.events)
        out = model.process_decode_output_host(read.host, is_tokens=outputs.sampled_on_device)
    if isinstance(out, tuple):  # some generators return (result, extra such as logprobs)
        out = out[0]
    outputs.put_decode(read.rows, read.slots, out)


def async_decode_usable(model: Any) -> bool:
    """Whether to read decode outputs when the step is finished (the model declares it and has the reads)."""
    if not capability(model, SUPPORTS_ASYNC_DECODE):
        return False
    problem = async_read_problem(model)
    if problem is not None:
        logger.warning("%s: %s; decoding synchronously.", type(model).__name__, problem)
        return False
    return True
