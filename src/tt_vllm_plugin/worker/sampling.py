"""A step's sampled tokens, one list per batch row: drawn by vLLM's ``Sampler`` from the row logits,
or taken as the model's device sampled them (which sampler, ``sampling_mode.py``)."""

from __future__ import annotations

from typing import Any

from vllm.v1.core.sched.output import GrammarOutput
from vllm.v1.outputs import LogprobsLists, ModelRunnerOutput

from tt_vllm_plugin.compat import apply_grammar_bitmask, runner_output_index
from tt_vllm_plugin.worker.input_batch import TTInputBatch
from tt_vllm_plugin.worker.step_data import PendingStep


def sample_on_host(
    sampler: Any, batch: TTInputBatch, pending: PendingStep, grammar_output: GrammarOutput | None
) -> tuple[list[list[int]], LogprobsLists | None]:
    """vLLM's sampler (or the plugin's host sampler, compat.py 5) over the step's logits, with the
    persistent batch's metadata (and the grammar bitmask, if any); returns the tokens per row and the
    logprobs the requests asked for."""
    logits = pending.outputs.values
    if grammar_output is not None:
        apply_grammar_bitmask(pending.scheduler_output, grammar_output, batch, logits)
    # A discarded sample must not advance a seeded request's generator: keep and restore state.
    saved_rng = {
        int(row): batch.generators[int(row)].get_state()
        for row in pending.partial_rows
        if int(row) in batch.generators
    }
    sampler_output = sampler(logits=logits, sampling_metadata=batch.sampling_metadata)
    for row, state in saved_rng.items():
        batch.generators[row].set_state(state)
    tokens = _per_row(sampler_output.sampled_token_ids.view(-1).tolist(), pending)
    logprobs = None
    if sampler_output.logprobs_tensors is not None:
        logprobs = sampler_output.logprobs_tensors.tolists()
    return tokens, logprobs


def sampled_on_device(pending: PendingStep, grammar_output: GrammarOutput | None) -> list[list[int]]:
    """The tokens the model's device sampled (vLLM's sampler skipped)."""
    if grammar_output is not None:  # the path rule sends every structured-output step to the host
        raise RuntimeError("a grammar bitmask arrived for a step the device sampled; this is a bug.")
    return _per_row(pending.outputs.values.tolist(), pending)


def _per_row(tokens: list[int], pending: PendingStep) -> list[list[int]]:
    """One token per row, none for the rows whose sample is discarded (prompt chunks)."""
    per_row = [[token] for token in tokens]
    for row in pending.partial_rows:
        per_row[int(row)] = []
    return per_row


def runner_output(
    batch: TTInputBatch,
    sampled_token_ids: list[list[int]],
    logprobs: LogprobsLists | None,
    pending: PendingStep,
) -> ModelRunnerOutput:
    req_ids = batch.req_ids.copy()
    return ModelRunnerOutput(
        req_ids=req_ids,
        **runner_output_index(req_ids),
        sampled_token_ids=sampled_token_ids,
        logprobs=logprobs,
        prompt_logprobs_dict=pending.prompt_logprobs,
    )
