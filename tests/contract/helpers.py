"""Inputs in the contract's conventions, and logits comparison: shared by the conformance suite and
tests/unit/test_host_models.py."""

from __future__ import annotations

import torch


def random_prompts(lengths: list[int], seed: int, vocab_size: int) -> list[torch.Tensor]:
    """Random token ids in [1, vocab_size), one 1-D int64 tensor per length (0 stays a padding id)."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(1, vocab_size, (n,), generator=generator) for n in lengths]


def padded_tokens(prompts: list[torch.Tensor], width: int | None = None) -> torch.Tensor:
    """(B, width) int64, row i = prompts[i] then zeros: the contract's prefill ``tokens``."""
    tokens = torch.zeros(len(prompts), width or max(len(p) for p in prompts), dtype=torch.int64)
    for row, prompt in enumerate(prompts):
        tokens[row, : len(prompt)] = prompt
    return tokens


def page_table(rows: list[list[int]], width: int) -> torch.Tensor:
    """(len(rows), width) int32, row i = rows[i] then zeros: the contract's zero-padded page table."""
    table = torch.zeros(len(rows), width, dtype=torch.int32)
    for row, blocks in enumerate(rows):
        table[row, : len(blocks)] = torch.tensor(blocks, dtype=torch.int32)
    return table


def blocks_for(length: int, block_size: int) -> int:
    return -(-length // block_size)


class BlockPool:
    """Hands out blocks in a shuffled order, so requests' blocks are scattered and non-contiguous."""

    def __init__(self, num_blocks: int, seed: int, first: int | None = None) -> None:
        self.free = torch.randperm(num_blocks, generator=torch.Generator().manual_seed(seed)).tolist()
        if first is not None:  # hand out this block first
            self.free.remove(first)
            self.free.insert(0, first)

    def take(self, count: int) -> list[int]:
        if count > len(self.free):
            raise ValueError(f"BlockPool: {count} blocks asked, {len(self.free)} left")
        taken, self.free = self.free[:count], self.free[count:]
        return taken


def pcc(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two tensors' values (Tenstorrent's usual accuracy measure)."""
    stacked = torch.stack([a.flatten().double(), b.flatten().double()])
    return float(torch.corrcoef(stacked)[0, 1])
