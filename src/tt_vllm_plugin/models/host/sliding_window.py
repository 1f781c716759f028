"""Sliding-window attention of the host models: which keys a query sees, and which layers have a window.

transformers' definition (``masking_utils.sliding_window_causal_mask_function``): with window ``W`` the
query at position ``q`` sees the keys at positions ``q - W < k <= q``, i.e. ``W`` keys including its own.
Its sliding-window caches keep ``W - 1`` past tokens for decode, the same set. vLLM's CPU attention kernels
take ``sliding_window=W`` with the same meaning (tests/unit/test_sliding_window.py checks both).

The KV cache stays a full cache (one FullAttentionSpec per layer, as tt-metal's hybrid classes do): the
window is applied inside attention, so prefix caching and chunked prefill work as for full attention.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

# Window of each decoder layer; None = full causal attention.
LayerWindows = list[int | None]

SLIDING = "sliding_attention"
FULL = "full_attention"


def first_visible(position: int, window: int | None) -> int:
    """The first key position the query at ``position`` sees."""
    return 0 if window is None else max(0, position - window + 1)


def window_mask(query_pos: torch.Tensor, key_pos: torch.Tensor, window: int | None) -> torch.Tensor:
    """(Q, K) bool, True where the query at ``query_pos[i]`` may attend to the key at ``key_pos[j]``:
    causal, and inside the window when there is one."""
    mask = key_pos[None, :] <= query_pos[:, None]
    if window is not None:
        mask &= key_pos[None, :] > query_pos[:, None] - window
    return mask


def effective_windows(windows: LayerWindows, max_seq_len: int) -> LayerWindows:
    """``windows`` with those at least ``max_seq_len`` long dropped: they never cut anything, and plain
    causal attention is cheaper."""
    return [None if window is None or window >= max_seq_len else window for window in windows]


def uniform_windows(config: Any, num_layers: int) -> LayerWindows:
    """Every layer windowed by ``config.sliding_window`` (None: no window), as Mistral's
    transformers model does (it has no ``layer_types``)."""
    window = _window(config)
    return [window] * num_layers


def windows_by_layer_type(config: Any, num_layers: int, owner: str) -> LayerWindows:
    """``config.sliding_window`` on the layers ``config.layer_types`` marks ``sliding_attention``, full
    attention on ``full_attention`` layers (Qwen2, Qwen3, Gemma 3, GPT-OSS in transformers). Any other
    layer type, or sliding layers without a window (transformers raises then), is refused."""
    layer_types: Sequence[str] = getattr(config, "layer_types", None) or [FULL] * num_layers
    if len(layer_types) < num_layers:
        raise NotImplementedError(
            f"{owner}: layer_types has {len(layer_types)} entries for {num_layers} layers."
        )
    unknown = sorted({kind for kind in layer_types if kind not in (SLIDING, FULL)})
    if unknown:
        raise NotImplementedError(
            f"{owner}: layer types {', '.join(unknown)} are not implemented for host models "
            f"(only {SLIDING} and {FULL})."
        )
    window = _window(config)
    if window is None and SLIDING in layer_types[:num_layers]:
        raise NotImplementedError(
            f"{owner}: layer_types has {SLIDING} layers but sliding_window is not set "
            "(transformers refuses this config too)."
        )
    return [window if kind == SLIDING else None for kind in layer_types[:num_layers]]


def _window(config: Any) -> int | None:
    window = getattr(config, "sliding_window", None)
    if window is None:
        return None
    if int(window) < 1:
        raise NotImplementedError(f"sliding_window={window} is not a window (must be >= 1, or null).")
    return int(window)
