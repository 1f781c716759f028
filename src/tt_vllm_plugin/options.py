"""TT options: one typed, validated object from ``--additional-config '{"tt": {...}}'``.

Unknown keys and bad values are refused with a message naming the key, the allowed values and where
the value came from, because a silently ignored typo in a deployment option costs hours on hardware.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal, get_args

TraceMode = Literal["all", "decode_only", "none"]
SampleOnDeviceMode = Literal["all", "decode_only"]
Optimizations = Literal["performance", "accuracy"]
DispatchCoreAxis = Literal["row", "col"]

ADDITIONAL_CONFIG_KEY = "tt"


class TTOptionsError(ValueError):
    pass


@dataclass(frozen=True)
class TTOptions:
    # KV budget in tokens across all requests (Tenstorrent's max_tokens_all_users). None: size the
    # pool from memory (host) or from the model (ttnn).
    kv_cache_tokens: int | None = None
    trace_mode: TraceMode = "all"
    sample_on_device_mode: SampleOnDeviceMode | None = None
    always_compat_sampling: bool = False
    enable_model_warmup: bool = True
    dispatch_core_axis: DispatchCoreAxis | None = None
    fabric_config: str | None = None
    fabric_reliability_mode: str | None = None
    trace_region_size: int | None = None
    worker_l1_size: int | None = None
    l1_small_size: int | None = None
    data_parallel: int = 1
    optimizations: Optimizations = "performance"

    @classmethod
    def from_mapping(cls, values: dict[str, Any] | None, source: str) -> TTOptions:
        values = dict(values or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise TTOptionsError(
                f"Unknown TT option(s) {', '.join(map(repr, unknown))} in {source}. "
                f"Known options: {', '.join(sorted(known))}."
            )
        for name, value in values.items():
            _check_value(name, value, _FIELD_TYPES[name], source)
        return cls(**values)


_FIELD_TYPES: dict[str, Any] = {
    "kv_cache_tokens": ("positive_int", True),
    "trace_mode": (TraceMode, False),
    "sample_on_device_mode": (SampleOnDeviceMode, True),
    "always_compat_sampling": (bool, False),
    "enable_model_warmup": (bool, False),
    "dispatch_core_axis": (DispatchCoreAxis, True),
    "fabric_config": (str, True),
    "fabric_reliability_mode": (str, True),
    "trace_region_size": ("positive_int", True),
    "worker_l1_size": ("positive_int", True),
    "l1_small_size": ("positive_int", True),
    "data_parallel": ("positive_int", False),
    "optimizations": (Optimizations, False),
}


def _check_value(name: str, value: Any, spec: tuple[Any, bool], source: str) -> None:
    kind, nullable = spec
    if value is None and nullable:
        return
    where = f"TT option {name!r} in {source}"
    if kind == "positive_int":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TTOptionsError(f"{where} must be a positive integer, got {value!r}.")
    elif kind is bool:
        if not isinstance(value, bool):
            raise TTOptionsError(f"{where} must be true or false, got {value!r}.")
    elif kind is str:
        if not isinstance(value, str):
            raise TTOptionsError(f"{where} must be a string, got {value!r}.")
    else:
        allowed = get_args(kind)
        if value not in allowed:
            raise TTOptionsError(f"{where} must be one of {', '.join(map(repr, allowed))}, got {value!r}.")


def tt_options_from_vllm_config(vllm_config: Any) -> TTOptions:
    """Read the options from ``additional_config["tt"]`` (vLLM's documented place for plugin options)."""
    additional = getattr(vllm_config, "additional_config", None) or {}
    raw = additional.get(ADDITIONAL_CONFIG_KEY) if isinstance(additional, dict) else None
    if raw is not None and not isinstance(raw, dict):
        raise TTOptionsError(
            f'--additional-config "{ADDITIONAL_CONFIG_KEY}" must be a JSON object, got {raw!r}.'
        )
    return TTOptions.from_mapping(raw, source=f'--additional-config "{ADDITIONAL_CONFIG_KEY}"')
