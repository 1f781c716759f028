"""Prompts that exercise sliding windows, the prefix cache and chunked prefill together, for the random
models (random_models.py) through vllm.LLM (test_engine_architectures.py) and vLLM's OpenAI server
(test_sliding_window_server.py).

Every prompt but one is longer than the windows (random_models.WINDOW); the first batch runs three
requests together; the second reuses the first's 80-token prefix from the prefix cache beside a fresh
request; a 32-token step budget (``max_num_batched_tokens``) prefills the long prompts in chunks.
"""

from __future__ import annotations

import torch

from tests.e2e.random_models import WINDOW

MAX_TOKENS = 10
MAX_BATCHED_TOKENS = 32  # below every long prompt: vLLM prefills them in chunks
PREFIX_TOKENS = 80  # five whole 16-token blocks, shared by the two batches


def _prompts() -> tuple[list[list[int]], list[list[int]]]:
    gen = torch.Generator().manual_seed(26)

    def tokens(n: int) -> list[int]:
        return torch.randint(1, 512, (n,), generator=gen).tolist()

    prefix = tokens(PREFIX_TOKENS)
    first = [prefix + tokens(7), tokens(100), [7, 8, 9]]  # the 3-token one is shorter than the window
    second = [prefix + tokens(11), tokens(45)]
    return first, second


FIRST, SECOND = _prompts()
assert min(len(p) for p in FIRST[:2] + SECOND) > max(WINDOW, MAX_BATCHED_TOKENS)
