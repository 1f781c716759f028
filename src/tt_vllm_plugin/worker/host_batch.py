"""The persistent batch and request state on a vLLM without its V1 runner parts (0.34 removed them).

Up to vLLM 0.32 the runner keeps vLLM's own ``InputBatch`` and ``CachedRequestState``
(``vllm/v1/worker/gpu_input_batch.py``); 0.34 deleted that module with the rest of Model Runner V1,
and its replacements (``v1/worker/gpu``, ``v1/worker/cpu``) need Triton on a GPU or ``vllm._C``, which
a ``VLLM_TARGET_DEVICE=empty`` build does not have. These classes keep what the runner and
:mod:`~tt_vllm_plugin.worker.host_sampler` read, under the same names and with the same behaviour
(a removed request leaves a hole; ``condense`` moves the last rows into the holes), so the runner's
code is the same on every supported vLLM. ``compat.py`` decides which one a process uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from vllm.sampling_params import SamplingType

from tt_vllm_plugin.worker.host_sampler import HostSamplingMetadata


@dataclass
class HostRequestState:
    """A request as the runner keeps it (the fields of vLLM's ``CachedRequestState`` it uses)."""

    req_id: str
    prompt_token_ids: list[int] | None
    mm_features: list[Any]
    sampling_params: Any  # vllm.SamplingParams
    generator: torch.Generator | None
    block_ids: tuple[list[int], ...]
    num_computed_tokens: int
    output_token_ids: list[int]
    in_progress_prompt_logprobs_cpu: Any = None  # vllm.v1.outputs.LogprobsTensors

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_token_ids or ()) + len(self.output_token_ids)


class HostBlockTable:
    """One KV cache group's block ids per row (vLLM's ``BlockTable``, CPU side only)."""

    def __init__(self, max_num_reqs: int, block_size: int, max_num_blocks_per_req: int) -> None:
        self.block_size = block_size
        self.max_num_blocks_per_req = max_num_blocks_per_req
        self.block_table_np = np.zeros((max_num_reqs, max_num_blocks_per_req), dtype=np.int32)
        self.num_blocks_per_row = np.zeros(max_num_reqs, dtype=np.int32)

    def add_row(self, block_ids: list[int], row: int) -> None:
        self.num_blocks_per_row[row] = 0
        self.append_row(block_ids, row)

    def append_row(self, block_ids: list[int], row: int) -> None:
        start = int(self.num_blocks_per_row[row])
        self.block_table_np[row, start : start + len(block_ids)] = block_ids
        self.num_blocks_per_row[row] = start + len(block_ids)

    def move_row(self, src: int, tgt: int) -> None:
        count = int(self.num_blocks_per_row[src])
        self.block_table_np[tgt, :count] = self.block_table_np[src, :count]
        self.num_blocks_per_row[tgt] = count

    def get_cpu_tensor(self) -> torch.Tensor:
        return torch.from_numpy(self.block_table_np)


class HostMultiGroupBlockTable(list):
    """One :class:`HostBlockTable` per KV cache group (vLLM's ``MultiGroupBlockTable``)."""

    @property
    def block_tables(self) -> list[HostBlockTable]:
        """The groups' tables, under the name vLLM's ``MultiGroupBlockTable`` gives them."""
        return list(self)

    def add_row(self, block_ids: Sequence[list[int]], row: int) -> None:
        for table, ids in zip(self, block_ids, strict=True):
            table.add_row(ids, row)

    def append_row(self, block_ids: Sequence[list[int]], row: int) -> None:
        for table, ids in zip(self, block_ids, strict=True):
            table.append_row(ids, row)

    def move_row(self, src: int, tgt: int) -> None:
        for table in self:
            table.move_row(src, tgt)


# Per-row numpy arrays, moved together when condense fills a hole.
_ROW_ARRAYS = (
    "token_ids_cpu",
    "is_token_ids",
    "num_tokens_no_spec",
    "num_prompt_tokens",
    "num_computed_tokens_cpu",
    "temperature_cpu",
    "top_p_cpu",
    "top_k_cpu",
    "min_p_cpu",
    "frequency_penalties_cpu",
    "presence_penalties_cpu",
    "repetition_penalties_cpu",
)
# Per-row sampling extras kept only for the rows that use them (row -> value).
_ROW_DICTS = ("generators", "logit_bias", "allowed_token_ids", "bad_words_token_ids", "min_tokens")


class HostInputBatch:
    """One slot per running request, kept across steps (vLLM's V1 ``InputBatch``, for the host
    sampler). Takes the arguments the runner gives vLLM's; ``logitsprocs`` must be None (custom logits
    processors need vLLM's V1 sampler and are refused without it)."""

    def __init__(
        self,
        *,
        max_num_reqs: int,
        max_model_len: int,
        max_num_batched_tokens: int,
        device: torch.device,
        vocab_size: int,
        block_sizes: list[int],
        max_num_blocks_per_req: list[int],
        logitsprocs: Any = None,
        logitsprocs_need_output_token_ids: bool = False,
    ) -> None:
        if logitsprocs is not None:
            raise ValueError("HostInputBatch takes no logits processors (they need vLLM's V1 sampler)")
        self.max_num_reqs = max_num_reqs
        self.vocab_size = vocab_size
        self.device = device
        self._req_ids: list[str | None] = []
        self.req_id_to_index: dict[str, int] = {}
        self.req_output_token_ids: list[list[int] | None] = []
        self.num_logprobs: dict[str, int] = {}
        shape = (max_num_reqs, max_model_len)
        self.token_ids_cpu = np.zeros(shape, dtype=np.int32)
        self.is_token_ids = np.zeros(shape, dtype=bool)
        for name, dtype in (("num_tokens_no_spec", np.int32), ("num_prompt_tokens", np.int32)):
            setattr(self, name, np.zeros(max_num_reqs, dtype=dtype))
        self.num_computed_tokens_cpu = np.zeros(max_num_reqs, dtype=np.int32)
        self.temperature_cpu = np.zeros(max_num_reqs, dtype=np.float32)
        self.top_p_cpu = np.ones(max_num_reqs, dtype=np.float32)
        self.top_k_cpu = np.full(max_num_reqs, vocab_size, dtype=np.int32)
        self.min_p_cpu = np.zeros(max_num_reqs, dtype=np.float32)
        self.frequency_penalties_cpu = np.zeros(max_num_reqs, dtype=np.float32)
        self.presence_penalties_cpu = np.zeros(max_num_reqs, dtype=np.float32)
        self.repetition_penalties_cpu = np.ones(max_num_reqs, dtype=np.float32)
        self.generators: dict[int, torch.Generator] = {}
        self.logit_bias: dict[int, dict[int, float]] = {}
        self.allowed_token_ids: dict[int, list[int]] = {}
        self.bad_words_token_ids: dict[int, list[list[int]]] = {}
        self.min_tokens: dict[int, tuple[int, set[int]]] = {}
        self.block_table = HostMultiGroupBlockTable(
            HostBlockTable(max_num_reqs, size, blocks)
            for size, blocks in zip(block_sizes, max_num_blocks_per_req, strict=True)
        )

    @property
    def req_ids(self) -> list[str]:
        return [req_id for req_id in self._req_ids if req_id is not None]

    @property
    def num_reqs(self) -> int:
        return len(self.req_id_to_index)

    def add_request(self, request: Any) -> int:
        """Put ``request`` (a request state) in the first free row; returns the row."""
        free = [row for row, req_id in enumerate(self._req_ids) if req_id is None]
        row = free[0] if free else len(self._req_ids)
        if row == len(self._req_ids):
            self._req_ids.append(None)
            self.req_output_token_ids.append(None)
        self._req_ids[row] = request.req_id
        self.req_output_token_ids[row] = request.output_token_ids
        self.req_id_to_index[request.req_id] = row
        prompt = list(request.prompt_token_ids or ())
        end = len(prompt) + len(request.output_token_ids)
        self.token_ids_cpu[row, : len(prompt)] = prompt
        self.token_ids_cpu[row, len(prompt) : end] = request.output_token_ids
        self.is_token_ids[row, :end] = True
        self.num_prompt_tokens[row] = len(prompt)
        self.num_tokens_no_spec[row] = end
        self.num_computed_tokens_cpu[row] = request.num_computed_tokens
        self.block_table.add_row(request.block_ids, row)
        self._set_sampling(row, request)
        return row

    def _set_sampling(self, row: int, request: Any) -> None:
        params = request.sampling_params
        greedy = params.sampling_type == SamplingType.GREEDY
        self.temperature_cpu[row] = 0.0 if greedy else params.temperature
        self.top_p_cpu[row] = params.top_p
        self.top_k_cpu[row] = params.top_k if 0 < params.top_k < self.vocab_size else self.vocab_size
        self.min_p_cpu[row] = params.min_p
        self.frequency_penalties_cpu[row] = params.frequency_penalty
        self.presence_penalties_cpu[row] = params.presence_penalty
        self.repetition_penalties_cpu[row] = params.repetition_penalty
        for name in _ROW_DICTS:
            getattr(self, name).pop(row, None)
        if request.generator is not None:
            self.generators[row] = request.generator
        if params.logprobs is not None:
            self.num_logprobs[request.req_id] = self.vocab_size if params.logprobs == -1 else params.logprobs
        if params.logit_bias:
            self.logit_bias[row] = {int(token): float(bias) for token, bias in params.logit_bias.items()}
        if params.allowed_token_ids:
            self.allowed_token_ids[row] = list(params.allowed_token_ids)
        if params.bad_words_token_ids:
            self.bad_words_token_ids[row] = params.bad_words_token_ids
        if params.min_tokens:
            self.min_tokens[row] = (params.min_tokens, set(params.all_stop_token_ids))

    def remove_request(self, req_id: str) -> int | None:
        """Free ``req_id``'s row (a hole until :meth:`condense`); returns the row."""
        row = self.req_id_to_index.pop(req_id, None)
        if row is None:
            return None
        self._req_ids[row] = None
        self.req_output_token_ids[row] = None
        self.num_logprobs.pop(req_id, None)
        for name in _ROW_DICTS:
            getattr(self, name).pop(row, None)
        return row

    def condense(self) -> None:
        """Fill each hole with the last occupied row, so rows 0..num_reqs-1 are the requests."""
        while True:
            while self._req_ids and self._req_ids[-1] is None:
                self._pop_last()
            holes = [row for row, req_id in enumerate(self._req_ids) if req_id is None]
            if not holes:
                return
            self._move_row(len(self._req_ids) - 1, holes[0])

    def _pop_last(self) -> None:
        self._req_ids.pop()
        self.req_output_token_ids.pop()

    def _move_row(self, src: int, tgt: int) -> None:
        req_id = self._req_ids[src]
        assert req_id is not None
        self._req_ids[tgt], self._req_ids[src] = req_id, None
        self.req_output_token_ids[tgt], self.req_output_token_ids[src] = self.req_output_token_ids[src], None
        self.req_id_to_index[req_id] = tgt
        for name in _ROW_ARRAYS:
            array = getattr(self, name)
            array[tgt] = array[src]
        for name in _ROW_DICTS:
            values = getattr(self, name)
            if src in values:
                values[tgt] = values.pop(src)
        self.block_table.move_row(src, tgt)

    def refresh_metadata(self) -> None:
        """Nothing to precompute: :attr:`sampling_metadata` reads the rows when the step samples."""

    @property
    def sampling_metadata(self) -> HostSamplingMetadata:
        n = self.num_reqs
        prompt_ids = [self.token_ids_cpu[row, : self.num_prompt_tokens[row]].tolist() for row in range(n)]
        return HostSamplingMetadata.of_rows(
            vocab_size=self.vocab_size,
            temperature=self.temperature_cpu[:n],
            top_k=self.top_k_cpu[:n],
            top_p=self.top_p_cpu[:n],
            min_p=self.min_p_cpu[:n],
            penalties=(
                self.frequency_penalties_cpu[:n],
                self.presence_penalties_cpu[:n],
                self.repetition_penalties_cpu[:n],
            ),
            prompt_token_ids=prompt_ids,
            output_token_ids=[list(self.req_output_token_ids[row] or ()) for row in range(n)],
            generators={row: g for row, g in self.generators.items() if row < n},
            num_logprobs=[self.num_logprobs.get(req_id) for req_id in self.req_ids],
            logit_bias=self.logit_bias,
            allowed_token_ids=self.allowed_token_ids,
            bad_words_token_ids=self.bad_words_token_ids,
            min_tokens=self.min_tokens,
        )
