"""Bidirectional attention inside an image's tokens (Gemma 3), on top of causal and sliding-window attention.

transformers' Gemma 3 (``modeling_gemma3.py`` ``create_masks_for_vision_model``, ``masking_utils.py``
``blockwise_overlay`` and ``sliding_window_overlay``): each maximal run of image tokens is one block, and a
query sees a key when ``(key <= query or both are in the same block) and key > query - window`` (no window
on full-attention layers). A request's blocks are given as position spans ``[first, end)``.

vLLM's CPU attention kernels have no such mask (vLLM does it only in its GPU backends, ``mm_prefix_range``),
so a prefill row with a block is attended in torch from its new tokens' K/V after the kernels wrote the
cache (``cpu_attention.rows_from_new_tokens``); that needs every key of the row in the pass, i.e. no
cached prefix, which the image models ensure by declaring neither prefix caching nor chunked prefill.
"""

from __future__ import annotations

import torch

from tt_vllm_plugin.models.host.sliding_window import window_mask

Spans = tuple[tuple[int, int], ...]  # [first, end) positions of one request, one span per image block


def visibility(
    query_pos: torch.Tensor, key_pos: torch.Tensor, window: int | None, spans: Spans = ()
) -> torch.Tensor:
    """(Q, K) bool: where the query at ``query_pos[i]`` may attend to the key at ``key_pos[j]``."""
    if not spans:
        return window_mask(query_pos, key_pos, window)
    mask = window_mask(query_pos, key_pos, None)
    for first, end in spans:
        query_in = (query_pos >= first) & (query_pos < end)
        key_in = (key_pos >= first) & (key_pos < end)
        mask |= query_in[:, None] & key_in[None, :]
    if window is not None:
        mask &= key_pos[None, :] > query_pos[:, None] - window
    return mask
