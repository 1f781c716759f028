"""TT options: one typed, validated object from ``--additional-config '{"tt": {...}}'``.

Unknown keys and bad values are refused with a message naming the key, the allowed values and where
the value came from, because a silently ignored typo in a deployment option costs hours on hardware.

Tenstorrent's older vLLM fork took the same keys as ``override_tt_config`` on the model config. vLLM
0.32 has no such field (its sources mention ``override_tt_config`` nowhere), so that source is only read
when a vLLM that still carries it passes it through; both sources may be given if they do not disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

from tt_vllm_plugin.device.choice import DeviceChoice
from tt_vllm_plugin.device.ttnn import installed_enum_members  # imports ttnn only when called
from tt_vllm_plugin.log import get_logger

TraceMode = Literal["all", "decode_only", "none"]
SampleOnDeviceMode = Literal["all", "decode_only"]
Optimizations = Literal["performance", "accuracy"]
# The allowed values of the options that name a ttnn enum member, each table the one place it is written.
# tests/real_ttnn/test_names.py holds them to the real ttnn 0.81.1's enums.
# ttnn.DispatchCoreAxis members ROW and COL, written lower-case here (device/mesh.py upper-cases them).
DispatchCoreAxis = Literal["row", "col"]
# fabric_config: where ttnn is importable, any member of the installed ttnn.FabricConfig, as Tenstorrent's
# runner resolves it (vllm-tt-plugin e3fc84941bf7a1d0df32aae2c50d539259c925f0 worker.py get_fabric_config:
# ``ttnn.FabricConfig.__members__.get(name)``), so a newer ttnn's fabrics work without a release of ours.
# Where it is not (the host device; tt-serve checking options in a backend's environment without ttnn),
# ttnn 0.81.1's members, in ttnn's order. The mesh open checks the name against the installed ttnn again
# (device/ttnn.py), for options validated elsewhere.
KNOWN_TTNN_VERSION = "0.81.1"
KNOWN_FABRIC_CONFIGS: tuple[str, ...] = (
    "DISABLED",
    "FABRIC_1D",
    "FABRIC_1D_RING",
    "FABRIC_1D_NEIGHBOR_EXCHANGE",
    "FABRIC_2D",
    "FABRIC_2D_TORUS_XY",
    "FABRIC_2D_TORUS_X",
    "FABRIC_2D_TORUS_Y",
    "CUSTOM",
)
# ttnn.FabricReliabilityMode members but DYNAMIC_RECONFIG, which ttnn documents as "[Unsupported]
# Placeholder for dynamic (runtime) reconfiguration": accepting it would only move the refusal onto the card.
FabricReliabilityModeName = Literal["STRICT_INIT", "RELAXED_INIT"]
# option -> (the ttnn enum whose member ``value.upper()`` it names, the values allowed without ttnn).
TTNN_ENUM_OPTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "dispatch_core_axis": ("DispatchCoreAxis", get_args(DispatchCoreAxis)),
    "fabric_config": ("FabricConfig", KNOWN_FABRIC_CONFIGS),
    "fabric_reliability_mode": ("FabricReliabilityMode", get_args(FabricReliabilityModeName)),
}

ADDITIONAL_CONFIG_KEY = "tt"
ADDITIONAL_CONFIG_SOURCE = f'--additional-config "{ADDITIONAL_CONFIG_KEY}"'
OVERRIDE_TT_CONFIG_SOURCE = "override_tt_config"

logger = get_logger(__name__)


class TTOptionsError(ValueError):
    pass


def _option(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class TTOptions:
    # Each option's meaning (metadata "doc") is what docs/reference/tt-options.md shows.
    kv_cache_tokens: int | None = _option(
        None,
        "the KV pool in tokens across all requests (Tenstorrent's max_tokens_all_users); unset: the model's "
        "own budget (get_max_tokens_all_users), else 131072, capped by --gpu-memory-utilization of host "
        "memory on the host device (vLLM's --kv-cache-memory-bytes also works there)",
    )
    prefill_batching: bool = _option(
        True,
        "false: one prefill_forward per request, as Tenstorrent's runner does, instead of one per step for "
        "all of them (to measure the TTFT batching saves; same outputs)",
    )
    trace_mode: TraceMode = _option(
        "all", "which steps run as captured ttnn traces: prefill and decode, decode only, or none"
    )
    sample_on_device_mode: SampleOnDeviceMode | None = _option(
        None,
        "sample on the model's device in these steps when every request allows it and the model declares "
        "supports_sample_on_device; unset: always vLLM's sampler",
    )
    always_compat_sampling: bool = _option(False, "true: always vLLM's sampler, whatever the mode says")
    enable_model_warmup: bool = _option(True, "run the model's warm-up hooks (compiling, capturing traces)")
    dispatch_core_axis: DispatchCoreAxis | None = _option(
        None, "ttnn.DispatchCoreAxis for the mesh; unset: ttnn's default"
    )
    fabric_config: str | None = _option(
        None, "ttnn.FabricConfig member; unset: FABRIC_1D (FABRIC_1D_RING on Galaxy) on a multi-device mesh"
    )
    fabric_reliability_mode: FabricReliabilityModeName | None = _option(
        None, "ttnn.FabricReliabilityMode for a multi-device mesh; unset: STRICT_INIT"
    )
    trace_region_size: int | None = _option(None, "bytes; unset: 50,000,000 when tracing")
    worker_l1_size: int | None = _option(None, "bytes; unset: ttnn's default (passed only when set)")
    l1_small_size: int | None = _option(None, "bytes; unset: ttnn's default (passed only when set)")
    data_parallel: int = _option(
        1,
        "submeshes, each serving max_num_seqs / data_parallel fixed decode slots; must divide the mesh "
        "and max_num_seqs",
    )
    optimizations: Optimizations = _option(
        "performance", "passed to tt-metal's initialize_vllm_model where it takes it (its precision preset)"
    )
    # The keys the user actually gave (so an option set to its default still counts as "set").
    given: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None, source: str) -> TTOptions:
        values = dict(values or {})
        known = _option_names()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise TTOptionsError(
                f"Unknown TT option(s) {', '.join(map(repr, unknown))} in {source}. "
                f"Known options: {', '.join(sorted(known))}."
            )
        for name, value in values.items():
            _check_value(name, value, _FIELD_TYPES[name], source)
        return cls(**values, given=frozenset(values))

    def ignored_on(self, device: DeviceChoice) -> list[str]:
        """The options the user set that ``device`` does not act on, sorted."""
        used = _USED_ON_HOST if device is DeviceChoice.HOST else _USED_ON_TTNN
        return sorted(self.given - used)


# What each device acts on. Both sample on the model's device when sample_on_device_mode asks and the
# model declares supports_sample_on_device (worker/sampling_mode.py; on ttnn the adapter builds
# tt-metal's SamplingParams, models/tt_metal/sampling.py).
_USED_ON_HOST = frozenset(
    {"kv_cache_tokens", "prefill_batching", "sample_on_device_mode", "always_compat_sampling"}
)
_USED_ON_TTNN = _USED_ON_HOST | {
    "trace_mode",
    "enable_model_warmup",
    "dispatch_core_axis",
    "fabric_config",
    "fabric_reliability_mode",
    "trace_region_size",
    "worker_l1_size",
    "l1_small_size",
    "data_parallel",
    "optimizations",
}

_FIELD_TYPES: dict[str, tuple[Any, bool]] = {
    "kv_cache_tokens": ("positive_int", True),
    "prefill_batching": (bool, False),
    "trace_mode": (TraceMode, False),
    "sample_on_device_mode": (SampleOnDeviceMode, True),
    "always_compat_sampling": (bool, False),
    "enable_model_warmup": (bool, False),
    "dispatch_core_axis": (DispatchCoreAxis, True),
    "fabric_config": ("fabric_config", True),
    "fabric_reliability_mode": (FabricReliabilityModeName, True),
    "trace_region_size": ("positive_int", True),
    "worker_l1_size": ("positive_int", True),
    "l1_small_size": ("positive_int", True),
    "data_parallel": ("positive_int", False),
    "optimizations": (Optimizations, False),
}


def _option_names() -> list[str]:
    return [f.name for f in fields(TTOptions) if f.name != "given"]


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
    elif kind == "fabric_config":
        allowed, origin = fabric_config_names()
        if value not in allowed:
            raise TTOptionsError(
                f"{where} must be one of {', '.join(map(repr, allowed))} ({origin}), got {value!r}."
            )
    else:
        allowed = get_args(kind)
        if value not in allowed:
            raise TTOptionsError(f"{where} must be one of {', '.join(map(repr, allowed))}, got {value!r}.")


@dataclass(frozen=True)
class OptionDescription:
    """One option as a reader sees it (docs/gen_reference.py renders these)."""

    name: str
    values: str
    default: str
    used_on: str
    doc: str


def describe_options() -> list[OptionDescription]:
    """Every option, in declaration order, from the schema itself: the field, its check, its devices."""
    described = []
    for spec in fields(TTOptions):
        if spec.name == "given":
            continue
        kind, nullable = _FIELD_TYPES[spec.name]
        if kind == "positive_int":
            values = "positive integer"
        elif kind is bool:
            values = "true | false"
        elif kind == "fabric_config":
            values = f"a member of the installed ttnn.FabricConfig (ttnn {KNOWN_TTNN_VERSION}'s: " + (
                ", ".join(KNOWN_FABRIC_CONFIGS) + ")"
            )
        else:
            values = " | ".join(get_args(kind))
        devices = [
            name for name, used in (("host", _USED_ON_HOST), ("ttnn", _USED_ON_TTNN)) if spec.name in used
        ]
        default = "unset" if spec.default is None else str(spec.default).lower()
        described.append(
            OptionDescription(
                spec.name,
                values,
                default,
                ", ".join(devices),
                spec.metadata["doc"],
            )
        )
    return described


def fabric_config_names() -> tuple[tuple[str, ...], str]:
    """The allowed ``fabric_config`` values and where they come from: the installed ttnn's FabricConfig
    members where ttnn is importable, else ttnn 0.81.1's."""
    installed = installed_enum_members("FabricConfig")
    if installed is None:
        return KNOWN_FABRIC_CONFIGS, f"ttnn {KNOWN_TTNN_VERSION}'s FabricConfig; ttnn is not importable here"
    return installed, "the installed ttnn's FabricConfig"


def tt_options_from_vllm_config(vllm_config: Any) -> TTOptions:
    """Read the options from ``additional_config["tt"]`` (vLLM's documented place for plugin options)
    and, where a vLLM still passes it, the older fork's ``model_config.override_tt_config``."""
    additional = getattr(vllm_config, "additional_config", None) or {}
    raw = additional.get(ADDITIONAL_CONFIG_KEY) if isinstance(additional, dict) else None
    if raw is not None and not isinstance(raw, dict):
        raise TTOptionsError(f"{ADDITIONAL_CONFIG_SOURCE} must be a JSON object, got {raw!r}.")
    legacy = getattr(getattr(vllm_config, "model_config", None), OVERRIDE_TT_CONFIG_SOURCE, None)
    if legacy is not None and not isinstance(legacy, dict):
        raise TTOptionsError(f"{OVERRIDE_TT_CONFIG_SOURCE} must be a JSON object, got {legacy!r}.")
    if legacy is None:
        return TTOptions.from_mapping(raw, source=ADDITIONAL_CONFIG_SOURCE)
    if raw is None:
        return TTOptions.from_mapping(legacy, source=OVERRIDE_TT_CONFIG_SOURCE)
    # Validate each source under its own name first, so a bad value names where it came from.
    TTOptions.from_mapping(raw, source=ADDITIONAL_CONFIG_SOURCE)
    TTOptions.from_mapping(legacy, source=OVERRIDE_TT_CONFIG_SOURCE)
    clashes = sorted(key for key in set(raw) & set(legacy) if raw[key] != legacy[key])
    if clashes:
        details = "; ".join(f"{key}: {raw[key]!r} vs {legacy[key]!r}" for key in clashes)
        raise TTOptionsError(
            f"TT option(s) set differently in {ADDITIONAL_CONFIG_SOURCE} and {OVERRIDE_TT_CONFIG_SOURCE} "
            f"({details}); set each option in one place."
        )
    both = f"{ADDITIONAL_CONFIG_SOURCE} + {OVERRIDE_TT_CONFIG_SOURCE}"
    return TTOptions.from_mapping({**legacy, **raw}, source=both)


_reported: set[tuple[str, tuple[str, ...]]] = set()


def report_ignored_options(options: TTOptions, device: DeviceChoice) -> list[str]:
    """Log, once per process and device, the options ``device`` ignores; returns them."""
    ignored = options.ignored_on(device)
    key = (str(device), tuple(ignored))
    if ignored and key not in _reported:
        _reported.add(key)
        logger.warning(
            "TT option(s) %s have no effect on the %s device and are ignored.", ", ".join(ignored), device
        )
    return ignored
