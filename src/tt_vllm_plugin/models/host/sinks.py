"""Attention sinks (GPT-OSS): one learned logit per head that joins every query's softmax and is then
dropped, so a head can put weight on "nothing" instead of on the keys.

transformers' eager GPT-OSS attention appends the sink as an extra column of the scaled, masked scores,
takes the softmax over all columns and drops that column before multiplying by V. The plain-torch path
does the same inside SDPA: one extra key whose value is zero (it adds nothing to the output) and whose
score is the sink, put there through SDPA's additive mask (its key is zero, so ``q . k`` is 0). vLLM's
CPU attention kernels take the sinks themselves (``s_aux``, float32), as vLLM's CPU platform runs
GPT-OSS.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sdpa_with_sinks(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor,
    scale: float,
    sink_logits: torch.Tensor,
    enable_gqa: bool = False,
) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` with a sink column: ``q`` (..., Q, D), ``k``/``v`` (..., L, D),
    boolean ``mask`` broadcastable to (..., Q, L) (True: attend), ``sink_logits`` broadcastable to
    ``q.shape[:-1] + (1,)`` (each query row's head's sink)."""
    rows = q.shape[:-1]
    k = F.pad(k, (0, 0, 0, 1))  # the sink's key and value: zeros, one more position
    v = F.pad(v, (0, 0, 0, 1))
    scores = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill_(~mask, float("-inf"))
    bias = torch.cat([scores.expand(*rows, mask.shape[-1]), sink_logits.to(q.dtype).expand(*rows, 1)], dim=-1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale, enable_gqa=enable_gqa)
