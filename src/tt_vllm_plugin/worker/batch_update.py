"""Keeping vLLM's persistent batch and the request states in line: with the scheduler at the start of a
step (:func:`update_states`, vLLM's GPU runner's ``_update_states``), and with the tokens sampled at
its end (:func:`append_sampled_tokens`).

Sampled tokens are written into the batch before the next step's inputs are built, so those inputs
never wait on the scheduler; that is what makes vLLM's async scheduling safe here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from vllm.sampling_params import SamplingType
from vllm.v1.core.sched.output import NewRequestData, SchedulerOutput

from tt_vllm_plugin.compat import (
    new_request_output_tokens,
    request_state_class,
    resumed_req_ids,
    resumed_token_ids,
)
from tt_vllm_plugin.compat.multimodal import request_mm_features
from tt_vllm_plugin.worker.decode_slots import DecodeSlots
from tt_vllm_plugin.worker.input_batch import TTInputBatch
from tt_vllm_plugin.worker.prompt_logprobs import PromptLogprobs
from tt_vllm_plugin.worker.unhandled_work import check_no_unhandled_work

if TYPE_CHECKING:
    from vllm.v1.worker.gpu_input_batch import CachedRequestState


def update_states(
    scheduler_output: SchedulerOutput,
    batch: TTInputBatch,
    requests: dict[str, CachedRequestState],
    slots: DecodeSlots,
    prompt_logprobs: PromptLogprobs,
) -> None:
    """Bring the batch, the request states and the decode slots in line with the scheduler."""
    check_no_unhandled_work(scheduler_output)
    cached = scheduler_output.scheduled_cached_reqs
    resumed = resumed_req_ids(cached)
    # A slot is kept while the request holds KV blocks: freed when it finishes or is preempted
    # (a resumed request is recomputed from scratch, in whichever slot is free then).
    slots.release(scheduler_output.finished_req_ids)
    slots.release(scheduler_output.preempted_req_ids or ())
    slots.release(resumed)
    for req_id in scheduler_output.finished_req_ids:
        requests.pop(req_id, None)
        prompt_logprobs.discard(req_id)
        batch.remove_request(req_id)

    # Requests not scheduled this step (preempted, or waiting for budget) leave the batch but
    # keep their state; they come back through the resumed path.
    scheduled_ids = scheduler_output.num_scheduled_tokens.keys()
    for req_id in batch.req_id_to_index.keys() - (scheduled_ids - resumed):
        batch.remove_request(req_id)

    to_add: list[CachedRequestState] = []
    for new in scheduler_output.scheduled_new_reqs:
        # 0.34 re-sends a resumed request as a new one (compat.new_request_output_tokens); any row
        # it still had is stale.
        batch.remove_request(new.req_id)
        state = _new_request_state(new)
        requests[new.req_id] = state
        prompt_logprobs.add(state)
        to_add.append(state)

    for i, req_id in enumerate(cached.req_ids):
        state = requests[req_id]
        state.num_computed_tokens = cached.num_computed_tokens[i]
        new_block_ids = cached.new_block_ids[i]
        num_output = cached.num_output_tokens[i]
        if req_id in resumed:
            # A resumed request got a fresh block list; its tokens are recomputed from scratch.
            state.block_ids = new_block_ids
            all_tokens = resumed_token_ids(cached, req_id)
            if all_tokens is not None and num_output > 0:
                state.output_token_ids = list(all_tokens[-num_output:])
            else:
                del state.output_token_ids[num_output:]
            to_add.append(state)
            continue
        if new_block_ids is not None:
            for block_ids, ids in zip(state.block_ids, new_block_ids, strict=True):
                block_ids.extend(ids)
        row = batch.req_id_to_index.get(req_id)
        if num_output < len(state.output_token_ids):
            # The scheduler dropped tokens we sampled (e.g. one step past a stop under async
            # scheduling): forget them so the next input is the scheduler's last token.
            del state.output_token_ids[num_output:]
            if row is not None:
                batch.num_tokens_no_spec[row] = batch.num_prompt_tokens[row] + num_output
        if row is None:  # scheduled again after a step out of the batch
            to_add.append(state)
            continue
        batch.num_computed_tokens_cpu[row] = state.num_computed_tokens
        if new_block_ids is not None:
            batch.block_table.append_row(new_block_ids, row)

    for state in to_add:
        batch.add_request(state)
    batch.condense()
    batch.refresh_metadata()
    for req_id in batch.req_ids:
        slots.assign(req_id)


def _new_request_state(new: NewRequestData) -> CachedRequestState:
    params = new.sampling_params
    generator = None
    if params is not None and params.sampling_type == SamplingType.RANDOM_SEED:
        generator = torch.Generator(device="cpu")
        generator.manual_seed(params.seed)
    return request_state_class()(
        req_id=new.req_id,
        prompt_token_ids=new.prompt_token_ids,
        mm_features=request_mm_features(new),  # kept for a recompute after preemption
        sampling_params=params,
        generator=generator,
        block_ids=new.block_ids,
        num_computed_tokens=new.num_computed_tokens,
        output_token_ids=new_request_output_tokens(new),
    )


def append_sampled_tokens(
    batch: TTInputBatch,
    requests: dict[str, CachedRequestState],
    sampled_token_ids: Sequence[list[int]],
    max_model_len: int,
) -> None:
    """Record each sampled token in the batch and the request state (the next step's input)."""
    for row, tokens in enumerate(sampled_token_ids):
        if not tokens:
            continue
        start = int(batch.num_tokens_no_spec[row])
        if start >= max_model_len:
            continue  # async scheduling ran one step past the end; the scheduler drops it
        batch.token_ids_cpu[row, start] = tokens[0]
        batch.is_token_ids[row, start] = True
        batch.num_tokens_no_spec[row] = start + 1
        requests[batch.req_ids[row]].output_token_ids.append(tokens[0])
