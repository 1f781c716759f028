"""M-RoPE (Qwen2-VL, Qwen2.5-VL): rotary embedding over three position axes (time, height, width).

Each token has three positions; the head's frequency bands are split into ``mrope_section`` parts, band
part ``i`` rotating by axis ``i % 3``'s position, as transformers' ``Qwen2_5_VLRotaryEmbedding`` composes
them. For a text token the three positions are equal, which is plain RoPE.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tt_vllm_plugin.models.host.ops import RotateFn, apply_rope


def mrope_rotation(
    inv_freq: torch.Tensor,
    positions: torch.Tensor,
    sections: Sequence[int],
    dtype: torch.dtype,
    head_dim: int,
) -> RotateFn:
    """The rotation of tokens at ``positions`` (3, N) with inverse frequencies (head_dim // 2,)."""
    freqs = positions[..., None].float() * inv_freq.float()  # (3, N, head_dim // 2)
    parts = freqs.split(list(sections), dim=-1)
    composed = torch.cat([part[i % 3] for i, part in enumerate(parts)], dim=-1)
    emb = torch.cat((composed, composed), dim=-1)
    cos, sin = emb.cos().to(dtype), emb.sin().to(dtype)

    def rotate(q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = q.shape[0]
        q = apply_rope(q.reshape(n, -1, head_dim), cos, sin).reshape(n, -1)
        k = apply_rope(k.reshape(n, -1, head_dim), cos, sin).reshape(n, -1)
        return q, k

    return rotate
