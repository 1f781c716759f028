"""Prompt logprobs, built chunk by chunk while a request's prompt is prefilled.

Follows vLLM's GPU runner: the logits at prompt position i score prompt token i + 1; a request's
``LogprobsTensors`` (num_prompt_tokens - 1 rows) is filled slice by slice across prefill chunks and
handed to vLLM once its prompt is complete. Scores come from vLLM's own sampler helpers (the plugin's
host sampler's on a vLLM without them, compat.py 5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from vllm.v1.outputs import LogprobsTensors

from tt_vllm_plugin.compat import logprob_helpers

if TYPE_CHECKING:
    from vllm.v1.worker.gpu_input_batch import CachedRequestState


class PromptLogprobs:
    def __init__(self, vocab_size: int, logprobs_mode: str) -> None:
        self.vocab_size = vocab_size
        self.logprobs_mode = logprobs_mode
        self.wanted: dict[str, int] = {}  # req_id -> number of top logprobs per position

    def add(self, state: CachedRequestState) -> None:
        params = state.sampling_params
        if params is not None and params.prompt_logprobs is not None:
            count = params.prompt_logprobs
            self.wanted[state.req_id] = self.vocab_size if count == -1 else count

    def discard(self, req_id: str) -> None:
        self.wanted.pop(req_id, None)

    def collect(
        self, state: CachedRequestState, num_computed: int, num_scheduled: int, logits: torch.Tensor
    ) -> LogprobsTensors | None:
        """Score this step's prompt positions (``logits``: one row per computed position).

        Returns the request's whole prompt logprobs once its last prompt chunk is done, else None.
        """
        count = self.wanted.get(state.req_id)
        if count is None or state.prompt_token_ids is None:
            return None
        num_prompt = len(state.prompt_token_ids)
        tensors = state.in_progress_prompt_logprobs_cpu
        if tensors is None:
            tensors = LogprobsTensors.empty_cpu(num_prompt - 1, count + 1)
            state.in_progress_prompt_logprobs_cpu = tensors
        first_target = num_computed + 1
        remaining = num_prompt - first_target
        complete = num_scheduled > remaining
        # When a chunk ends exactly one token short of the prompt, vLLM waits for the next step
        # (which brings the first generated token) to return the finished prompt logprobs.
        num_logits = remaining if complete else num_scheduled
        if num_logits > 0:
            targets = torch.tensor(state.prompt_token_ids[first_target : first_target + num_logits])
            scores = logits[:num_logits].float()
            helpers = logprob_helpers()
            if self.logprobs_mode not in ("raw_logits", "processed_logits"):
                scores = helpers.compute_logprobs(scores)
            token_ids, logprobs, ranks, *_ = helpers.gather_logprobs(scores, count, targets)
            window = slice(num_computed, num_computed + num_logits)
            tensors.logprob_token_ids[window] = token_ids
            tensors.logprobs[window] = logprobs
            tensors.selected_token_ranks[window] = ranks
        if not complete:
            return None
        self.discard(state.req_id)
        state.in_progress_prompt_logprobs_cpu = None
        return tensors
