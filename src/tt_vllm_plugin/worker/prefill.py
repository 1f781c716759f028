"""A step's prefill: one ``prefill_forward`` for every row with prompt tokens to compute.

New requests, prompt chunks, cached-prefix suffixes and recomputation after a preemption all go into
one batched call (Tenstorrent's own runner prefills one user at a time, tt-metal #33381; the TT option
``prefill_batching`` false does the same here, to measure what batching saves).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from vllm.v1.outputs import LogprobsTensors

from tt_vllm_plugin.worker.multimodal_inputs import prefill_image_kwargs
from tt_vllm_plugin.worker.prompt_logprobs import PromptLogprobs
from tt_vllm_plugin.worker.step_data import RowOutputs, StepContext
from tt_vllm_plugin.worker.step_plan import StepPlan


def run_prefill(
    ctx: StepContext, plan: StepPlan, outputs: RowOutputs, prompt_logprobs: PromptLogprobs, batching: bool
) -> dict[str, LogprobsTensors | None]:
    """Prefill ``plan.prefill_rows`` into ``outputs``; returns the prompt logprobs completed this step."""
    rows = plan.prefill_rows
    if not len(rows):
        return {}
    wanted = [int(row) for row in rows if ctx.batch.req_ids[row] in prompt_logprobs.wanted]
    extra = _prefill_arguments(plan, rows, all_logits=bool(wanted))
    with ctx.metrics.model_call("prefill", len(rows)):
        out = prefill_forward(ctx, rows, plan.ends[rows], extra, batching)
    if not wanted:
        outputs.put_prefill(rows, out)
        return {}
    return _split_all_logits(ctx, plan, outputs, out, wanted, prompt_logprobs)


def _prefill_arguments(plan: StepPlan, rows: np.ndarray, all_logits: bool) -> dict[str, Any]:
    """The call's optional arguments: the device sampler's parameters of ``rows``, or, for prompt
    logprobs, every computed position's logits (models declaring supports_prompt_logprobs return them
    flat). Never both: a request with prompt logprobs sends its step to vLLM's sampler."""
    if plan.device_sampling is not None:
        return {"sampling_params": plan.device_sampling.select(torch.from_numpy(rows))}
    return {"return_all_logits": True} if all_logits else {}


def _split_all_logits(
    ctx: StepContext,
    plan: StepPlan,
    outputs: RowOutputs,
    out: torch.Tensor,
    wanted: list[int],
    prompt_logprobs: PromptLogprobs,
) -> dict[str, LogprobsTensors | None]:
    """Flat all-position logits: each row's last goes to ``outputs``, the rows in ``wanted`` score their
    prompt positions. Returns the prompt logprobs of requests whose prompt is complete."""
    rows = plan.prefill_rows
    flat = out.to(device="cpu", dtype=torch.float32)[:, : outputs.values.shape[1]]
    per_row = dict(zip(rows.tolist(), flat.split(plan.scheduled[rows].tolist()), strict=True))
    outputs.put_logits(rows, torch.stack([per_row[row][-1] for row in rows.tolist()]))
    done: dict[str, LogprobsTensors | None] = {}
    for row in wanted:
        req_id = ctx.batch.req_ids[row]
        state = ctx.requests[req_id]
        tensors = prompt_logprobs.collect(
            state, int(plan.computed[row]), int(plan.scheduled[row]), per_row[row]
        )
        if tensors is not None:
            done[req_id] = tensors
    return done


def prefill_forward(
    ctx: StepContext, rows: np.ndarray, ends: np.ndarray, extra: dict[str, Any], batching: bool
) -> torch.Tensor:
    """One ``prefill_forward`` for all ``rows``, or without ``batching`` one per row. Either way the
    result is laid out as one batched call's: (rows, 1, vocab), or flat with every logit."""
    if not batching and len(rows) > 1:
        one_by_one = [
            single_prefill(ctx, rows[i : i + 1], ends[i : i + 1], _for_row(extra, i))
            for i in range(len(rows))
        ]
        return torch.cat(one_by_one)
    return single_prefill(ctx, rows, ends, extra)


def single_prefill(
    ctx: StepContext, rows: np.ndarray, ends: np.ndarray, extra: dict[str, Any]
) -> torch.Tensor:
    """One contract call computing tokens ``[num_computed, end)`` of each of ``rows``."""
    inputs = ctx.batch.prefill_inputs(rows, ends)
    # Always the decode slot each prompt fills, as Tenstorrent's runner does (vllm-tt-plugin 2b0c1cc):
    # tt-metal seeds that slot's sampling state from it (default range(B), the prefill rows) and, with
    # data_parallel > 1, picks the submesh (and KV cache) by it (generator.py prefill_forward_text).
    extra = {**extra, "empty_slots": ctx.slots.of(ctx.batch.req_ids[row] for row in rows).tolist()}
    if ctx.layer_groups is not None:  # hybrid attention: each layer's own group's blocks
        extra["page_tables_per_layer"] = ctx.batch.page_tables_per_layer(rows, None, ctx.layer_groups)
    req_ids = [ctx.batch.req_ids[row] for row in rows]
    if ctx.takes_images:
        extra.update(prefill_image_kwargs(ctx.requests[req_id] for req_id in req_ids))
    out = ctx.model.prefill_forward(
        inputs.tokens,
        inputs.page_table,
        ctx.kv_cache,
        inputs.prompt_lens,
        start_pos=inputs.start_pos,
        **extra,
    )
    if ctx.rope_deltas is not None:  # M-RoPE models return (logits, rope_deltas)
        out, deltas = out
        ctx.rope_deltas.record(req_ids, deltas)
    # A device may pad its batch (logits or sampled ids): keep only the rows asked for. Flat
    # all-position logits have no padding and no per-request rows.
    return out if extra.get("return_all_logits") else out[: len(rows)]


def _for_row(extra: dict[str, Any], i: int) -> dict[str, Any]:
    """``extra`` for row ``i`` of a batched prefill called alone (per-row device sampling parameters)."""
    params = extra.get("sampling_params")
    return extra if params is None else {**extra, "sampling_params": params.select(slice(i, i + 1))}
