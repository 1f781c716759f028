"""RoPE settings of a Hugging Face config, as transformers' ``modeling_rope_utils.py`` reads them: the
inverse frequencies the host models rotate q and k by, and the factor cos and sin are scaled by (the
rotation itself is ``ops.RotaryEmbedding``).

Types: ``default``, ``linear``, ``llama3``, ``yarn`` (frequencies ramped between interpolation and
extrapolation, cos/sin scaled by its attention factor) exactly as transformers computes them, at every
position. Two types change their frequencies with the length of the sequence in transformers, per
forward call, without re-rotating the keys already cached, so their result depends on how a sequence
was split into calls (prompt, chunks, cached prefix, decode steps):

- ``dynamic`` (NTK): inside ``max_position_embeddings`` transformers uses the frequencies of that length,
  which equal the default ones; beyond it the base grows with each call's longest position. Served
  exactly while ``max_seq_len <= max_position_embeddings``, refused beyond.
- ``longrope``: ``short_factor`` while each call's longest position is within
  ``original_max_position_embeddings``, ``long_factor`` beyond (for that call's new tokens only). Served
  exactly while ``max_seq_len <= original_max_position_embeddings`` (vLLM's default ``max_model_len`` for
  longrope), refused beyond.

Configs whose RoPE differs by layer type (Gemma 3: ``rope_parameters = {"sliding_attention": {...},
"full_attention": {...}}``) are read per ``layer_type``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from tt_vllm_plugin.models.host.ops import RotaryEmbedding

SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3", "yarn", "dynamic", "longrope")


@dataclass(frozen=True)
class RopeFrequencies:
    inv_freq: torch.Tensor  # (head_dim // 2,) float32
    attention_scaling: float  # cos and sin are multiplied by it (yarn, longrope; 1 otherwise)


def _raw_parameters(config: Any) -> dict[str, Any]:
    # transformers 5 keeps them in ``rope_parameters``; older configs use ``rope_scaling`` (with ``type``
    # or ``rope_type``) plus a top-level ``rope_theta``.
    return dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})


def rope_parameters(config: Any, layer_type: str | None = None) -> dict[str, Any]:
    """The RoPE settings of ``config`` (of its ``layer_type`` layers when they are nested by layer type)
    as one dict with ``rope_type`` and ``rope_theta``."""
    raw = _raw_parameters(config)
    if layer_type is not None and isinstance(raw.get(layer_type), dict):
        params = dict(raw[layer_type])
    elif layer_type is not None and any(isinstance(value, dict) for value in raw.values()):
        raise NotImplementedError(f"rope_parameters has no entry for {layer_type} layers.")
    else:
        params = raw
    params["rope_type"] = params.get("rope_type") or params.get("type") or "default"
    if "rope_theta" not in params:
        params["rope_theta"] = getattr(config, "rope_theta", None) or 10000.0
    if params["rope_type"] in ("llama3", "yarn", "longrope"):
        # transformers' standardize_rope_params: a top-level value wins (Phi-3 keeps it there).
        top = getattr(config, "original_max_position_embeddings", None)
        if top is not None and layer_type is None:
            params["original_max_position_embeddings"] = top
        params.setdefault("original_max_position_embeddings", config.max_position_embeddings)
    return params


def rope_frequencies(
    config: Any, head_dim: int, max_seq_len: int, layer_type: str | None = None
) -> RopeFrequencies:
    """Inverse frequencies (head_dim // 2,) float32 and the cos/sin scaling, as transformers computes
    them, for a model that serves positions below ``max_seq_len``."""
    params = rope_parameters(config, layer_type)
    rope_type = params["rope_type"]
    where = f" ({layer_type} layers)" if layer_type else ""
    if rope_type not in SUPPORTED_ROPE_TYPES:
        raise NotImplementedError(
            f"RoPE type '{rope_type}'{where} is not implemented for host models "
            f"(supported: {', '.join(SUPPORTED_ROPE_TYPES)})."
        )
    if params.get("partial_rotary_factor", 1.0) != 1.0:
        raise NotImplementedError("partial_rotary_factor != 1 is not implemented for host models.")
    base = float(params["rope_theta"])
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim
    inv_freq = 1.0 / (base**exponents)
    if rope_type == "linear":
        return RopeFrequencies(inv_freq / float(params["factor"]), 1.0)
    if rope_type == "llama3":
        return RopeFrequencies(_llama3_scale(inv_freq, params), 1.0)
    if rope_type == "yarn":
        truncate = _raw_parameters(config).get("truncate", True)
        return _yarn(params, base, head_dim, config.max_position_embeddings, truncate)
    if rope_type == "dynamic":
        return RopeFrequencies(_dynamic_ntk(params, base, head_dim, max_seq_len, config, where), 1.0)
    if rope_type == "longrope":
        return _longrope(params, base, head_dim, max_seq_len, config, where)
    return RopeFrequencies(inv_freq, 1.0)


def rotary_embedding(
    config: Any,
    head_dim: int,
    max_seq_len: int,
    dtype: torch.dtype,
    device: torch.device,
    fused: bool,
    layer_type: str | None = None,
) -> RotaryEmbedding:
    """The rotation of a model's (``layer_type``) layers for every position below ``max_seq_len``."""
    freqs = rope_frequencies(config, head_dim, max_seq_len, layer_type)
    return RotaryEmbedding(
        freqs.inv_freq, head_dim, max_seq_len, dtype, device, fused, attention_scaling=freqs.attention_scaling
    )


def _llama3_scale(inv_freq: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    """Llama 3.1 frequency scaling: long wavelengths slowed by ``factor``, short kept, smooth between."""
    factor = float(params["factor"])
    low_freq_factor = float(params["low_freq_factor"])
    high_freq_factor = float(params["high_freq_factor"])
    old_context_len = float(params["original_max_position_embeddings"])
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor

    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium, smoothed, scaled)


def _yarn_mscale(scale: float, mscale: float = 1) -> float:
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def _yarn(
    params: dict[str, Any], base: float, dim: int, max_position_embeddings: int, truncate: bool
) -> RopeFrequencies:
    """YaRN (transformers' ``_compute_yarn_parameters``). ``truncate`` is read from the top level of the
    config's RoPE dict, as transformers does (so always True when the dict is nested by layer type)."""
    original = params["original_max_position_embeddings"]
    factor = params["factor"]
    if factor is None:
        factor = max_position_embeddings / original
    attention_factor = params.get("attention_factor")
    mscale, mscale_all_dim = params.get("mscale"), params.get("mscale_all_dim")
    if attention_factor is None:
        if mscale and mscale_all_dim:
            attention_factor = float(_yarn_mscale(factor, mscale) / _yarn_mscale(factor, mscale_all_dim))
        else:
            attention_factor = _yarn_mscale(factor)
    beta_fast = params.get("beta_fast") or 32
    beta_slow = params.get("beta_slow") or 1

    def correction_dim(rotations: float) -> float:
        return (dim * math.log(original / (rotations * 2 * math.pi))) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001  # transformers' guard against a zero-width ramp
    ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    extrapolation_weight = 1 - ramp
    pos_freqs = base ** (torch.arange(0, dim, 2).float() / dim)
    inv_freq = (1.0 / (factor * pos_freqs)) * (1 - extrapolation_weight) + (
        1.0 / pos_freqs
    ) * extrapolation_weight
    return RopeFrequencies(inv_freq, float(attention_factor))


def _dynamic_ntk(
    params: dict[str, Any], base: float, dim: int, max_seq_len: int, config: Any, where: str
) -> torch.Tensor:
    """Dynamic NTK inside ``max_position_embeddings``: the frequencies transformers starts with
    (``_compute_dynamic_ntk_parameters`` at that length, the same expression so the same floats)."""
    length = int(config.max_position_embeddings)
    if max_seq_len > length:
        raise NotImplementedError(
            f"RoPE type 'dynamic'{where} beyond max_position_embeddings={length} is not implemented for "
            "host models: transformers then grows the base with each forward call's length and keeps the "
            "keys cached under older bases, which depends on how the sequence was split into calls. "
            f"Use max_model_len <= {length} (asked: {max_seq_len})."
        )
    factor = params["factor"]
    grown = base * ((factor * length / length) - (factor - 1)) ** (dim / (dim - 2))
    return 1.0 / (grown ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def _longrope(
    params: dict[str, Any], base: float, dim: int, max_seq_len: int, config: Any, where: str
) -> RopeFrequencies:
    """LongRoPE with its short factors (transformers' ``_compute_longrope_parameters`` while no call
    goes beyond ``original_max_position_embeddings``)."""
    original = int(params["original_max_position_embeddings"])
    if max_seq_len > original:
        raise NotImplementedError(
            f"RoPE type 'longrope'{where} beyond original_max_position_embeddings={original} is not "
            "implemented for host models: transformers switches to long_factor per forward call, for that "
            "call's new tokens only, which depends on how the sequence was split into calls. "
            f"Use max_model_len <= {original} (asked: {max_seq_len})."
        )
    factor = params.get("factor")
    if factor is None:
        factor = config.max_position_embeddings / original
    attention_factor = params.get("attention_factor")
    if attention_factor is None:
        attention_factor = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))
    short = torch.tensor(params["short_factor"], dtype=torch.float32)
    shape = torch.arange(0, dim, 2, dtype=torch.int64).float() / dim
    return RopeFrequencies(1.0 / (short * base**shape), float(attention_factor))
