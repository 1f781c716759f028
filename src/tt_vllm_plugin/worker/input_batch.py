"""The persistent input batch: one slot per running request, kept across steps.

vLLM's own ``InputBatch`` already keeps per-slot token ids, block tables and everything its sampler
needs (temperatures, penalties, generators, logits processors for min_p / logit_bias / min_tokens,
allowed and bad words), and adds, removes and condenses slots as requests come and go. Reusing it
keeps sampling identical to vLLM's; :class:`TTInputBatch` adds the tensors the TT model contract
takes. Where vLLM no longer has that batch (0.34), the same views sit on the plugin's own
``HostInputBatch`` (``host_batch.py``); ``compat.persistent_batch_class`` says which.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tt_vllm_plugin.compat import input_batch_kwargs, persistent_batch_class


@dataclass(frozen=True)
class PrefillInputs:
    """One batched ``prefill_forward`` call (see ``models/contract.py``)."""

    tokens: torch.Tensor  # (B, max_end) int64, each row's tokens [0, end), zero padded
    page_table: torch.Tensor  # (B, max_blocks) int32, zero padded
    prompt_lens: torch.Tensor  # (B,) int32: end of the computed range
    start_pos: torch.Tensor  # (B,) int32: tokens already in the KV cache


@dataclass(frozen=True)
class DecodeInputs:
    """One ``decode_forward`` call, padded to ``max_batch`` slots (-1 start_pos in empty ones)."""

    tokens: torch.Tensor  # (max_batch, 1) int64
    start_pos: torch.Tensor  # (max_batch,) int32
    page_table: torch.Tensor  # (max_batch, max_blocks_per_request) int32, zero padded


def make_input_batch(*, block_sizes: list[int], **kwargs: Any) -> TTInputBatch:
    """A :class:`TTInputBatch` on this vLLM's persistent batch. Takes 0.32's ``InputBatch`` arguments;
    what another supported vLLM also needs comes from compat."""
    cls = _on(persistent_batch_class())
    return cls(block_sizes=block_sizes, **kwargs, **input_batch_kwargs(block_sizes))


@functools.cache
def _on(base: type) -> type[TTInputBatch]:
    return type("TTInputBatch", (TTInputBatch, base), {"__module__": __name__})


class TTInputBatch:
    """The contract's views of the persistent batch (mixed into vLLM's ``InputBatch`` or the plugin's
    ``HostInputBatch`` by :func:`make_input_batch`, which provide every attribute used here)."""

    block_table: Any
    token_ids_cpu: np.ndarray
    num_computed_tokens_cpu: np.ndarray

    def _page_table(
        self,
        rows: np.ndarray,
        num_rows: int,
        num_blocks: int,
        slots: np.ndarray | None = None,
        group: int = 0,
        width: int | None = None,
    ) -> torch.Tensor:
        """The block ids of ``rows`` in KV cache group ``group`` as a (num_rows, width) table (width
        ``num_blocks`` unless given), zero padded; row i of the table is ``rows[i]``, or ``rows[i]``'s slot
        ``slots[i]`` when given."""
        table = self.block_table[group]
        num_blocks = min(num_blocks, table.max_num_blocks_per_req)
        out = torch.zeros((num_rows, max(width or num_blocks, 1)), dtype=torch.int32)
        if len(rows) and num_blocks:
            ids = table.get_cpu_tensor()[rows, :num_blocks].clone()
            # Rows keep stale ids past their own length after a slot is reused, and those blocks may
            # belong to another request by now. Zero is vLLM's null block, which no request owns, so
            # a model that touches padded entries (tt-metal pads its prefill) harms nobody.
            used = torch.from_numpy(table.num_blocks_per_row[rows].astype(np.int64))
            ids[torch.arange(num_blocks)[None, :] >= used[:, None]] = 0
            where = torch.arange(len(rows)) if slots is None else torch.from_numpy(slots)
            out[where, :num_blocks] = ids
        return out

    def page_tables_per_layer(
        self, rows: np.ndarray, slots: np.ndarray | None, layer_groups: list[int]
    ) -> list[torch.Tensor]:
        """One page table per layer, its KV cache group's (``layer_groups[layer]``), for a model with
        several groups (hybrid attention). As Tenstorrent's runner (vllm-tt-plugin model_runner.py
        ``_block_tables_per_layer``), every table has tt-metal's persistent shape, (max_num_reqs, the most
        blocks a request may hold in any group), zero padded, whether the call prefills or decodes; row i
        is ``rows[i]`` (or sits at ``slots[i]``) as in the call's own page table. Layers of one group share
        one tensor."""
        width = max(table.max_num_blocks_per_req for table in self.block_table.block_tables)
        per_group = {
            group: self._page_table(rows, self.max_num_reqs, width, slots, group, width)
            for group in sorted(set(layer_groups))
        }
        return [per_group[group] for group in layer_groups]

    def prefill_inputs(self, rows: np.ndarray, ends: np.ndarray) -> PrefillInputs:
        """Inputs computing tokens ``[num_computed, end)`` of each slot in ``rows``."""
        max_end = int(ends.max())
        tokens = torch.from_numpy(self.token_ids_cpu[rows, :max_end].astype(np.int64))
        # Zero what lies past each row's end (later tokens of a chunked prompt, or stale ids).
        tokens[torch.arange(max_end)[None, :] >= torch.from_numpy(ends)[:, None]] = 0
        block_size = self.block_table[0].block_size
        num_blocks = -(-max_end // block_size)
        return PrefillInputs(
            tokens=tokens,
            page_table=self._page_table(rows, len(rows), num_blocks),
            prompt_lens=torch.from_numpy(ends.astype(np.int32)),
            start_pos=torch.from_numpy(self.num_computed_tokens_cpu[rows].astype(np.int32)),
        )

    def decode_inputs(self, rows: np.ndarray, max_batch: int, slots: np.ndarray) -> DecodeInputs:
        """Inputs feeding each row's last token at position ``num_computed``, row i in decode slot
        ``slots[i]`` (see ``decode_slots.py``); every other slot is empty (start_pos -1)."""
        positions = self.num_computed_tokens_cpu[rows].astype(np.int64)
        where = torch.from_numpy(slots)
        tokens = torch.zeros((max_batch, 1), dtype=torch.int64)
        tokens[where, 0] = torch.from_numpy(self.token_ids_cpu[rows, positions].astype(np.int64))
        start_pos = torch.full((max_batch,), -1, dtype=torch.int32)
        start_pos[where] = torch.from_numpy(positions.astype(np.int32))
        # Constant width (every block a request may ever hold), so a device trace can be replayed;
        # a model reads only the blocks its positions reach.
        num_blocks = self.block_table[0].max_num_blocks_per_req
        return DecodeInputs(
            tokens=tokens,
            start_pos=start_pos,
            page_table=self._page_table(rows, max_batch, num_blocks, slots),
        )
