"""The runner's device sampling parameters as tt-metal's own ``SamplingParams``: where tt-metal keeps that
class, and the conversion."""

from __future__ import annotations

import functools
import importlib
import inspect
from typing import Any

import torch

from tt_vllm_plugin.models.device_sampling import GREEDY_TEMPERATURE, UNSEEDED, DeviceSamplingParams

# Where tt-metal defines the per-row sampling parameters its generators take (``sampling_params=``):
# models/common/sampling in current releases, the generator module in older ones. First found wins.
SAMPLING_PARAMS_CLASSES = (
    "models.common.sampling.sampling_params:SamplingParams",
    "models.ttt_compat.tt.generator:SamplingParams",
    "models.tt_transformers.tt.generator:SamplingParams",
)


def to_tt_metal_sampling_params(params: DeviceSamplingParams, params_cls: type) -> Any:
    """``params`` as tt-metal's ``SamplingParams``: one list entry per row.

    tt-metal's conventions (``format_sampling_params`` in models/common/sampling/generator.py): a
    temperature of 0 means greedy; it pads the lists to its sampling batch itself. Greedy rows are sent
    as temperature 0, top-k 1, top-p 1. Random rows reach here only with 1 <= top_k <= the device's
    limit (``worker/sampling_mode.py`` sends every other request to vLLM's sampler). ``seed`` (when the
    installed class has it) is each row's request seed, None for requests without one, as
    Tenstorrent's own runner passes it: tt-metal's SeedManager seeds the slot's stream when the
    request is prefilled into it and advances it every decode, so a seeded request's tokens depend on
    its seed and its slot's stream only (the runner keeps a request in one slot, decode_slots.py).
    Penalties and logprobs keep the class's defaults: steps that need them never sample on the device.
    """
    accepted = inspect.signature(params_cls).parameters
    missing = [name for name in ("temperature", "top_k", "top_p") if name not in accepted]
    if missing:
        raise TypeError(
            f"{params_cls.__module__}.{params_cls.__qualname__} has no field(s) {missing}; this tt-metal "
            "release's sampling parameters are not supported: unset sample_on_device_mode."
        )
    greedy = params.temperature < GREEDY_TEMPERATURE
    values: dict[str, Any] = {
        "temperature": torch.where(greedy, 0.0, params.temperature).tolist(),
        "top_k": torch.where(greedy, 1, params.top_k).tolist(),
        "top_p": torch.where(greedy, 1.0, params.top_p).tolist(),
    }
    if "seed" in accepted:
        values["seed"] = [None if s == UNSEEDED else s for s in params.request_seeds.tolist()]
    return params_cls(**values)


@functools.cache
def tt_metal_sampling_params_class() -> type | None:
    """tt-metal's ``SamplingParams`` class, or None when tt-metal is not importable (then the adapter
    hands the runner's :class:`DeviceSamplingParams` to the generator unchanged, as for host models)."""
    for target in SAMPLING_PARAMS_CLASSES:
        module_name, class_name = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except Exception:  # not installed, or its import failed (no ttnn): try the next place
            continue
        found = getattr(module, class_name, None)
        if isinstance(found, type):
            return found
    return None


def for_generator(sampling_params: Any) -> Any:
    """What the generator gets for the runner's ``sampling_params`` (None stays None)."""
    params_cls = tt_metal_sampling_params_class()
    if isinstance(sampling_params, DeviceSamplingParams) and params_cls is not None:
        return to_tt_metal_sampling_params(sampling_params, params_cls)
    return sampling_params
