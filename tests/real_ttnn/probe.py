"""``python -m tests.real_ttnn.probe SYSTEM PHASE OUT.json``: the plugin against the real ttnn, in this
process, on the system a tt-umd cluster descriptor mocks (tests/real_ttnn/systems.py sets it up; SYSTEM ""
means no descriptor: no chips). Writes what it saw to OUT.json for the tests to read. PHASE "detect":

- activation: ``tt_vllm_plugin.register()`` as vLLM calls it (TT_VLLM_DEVICE unset, then ``auto``), its log
  line, ``ttnn_availability()``, and which vLLM or torch modules that imported (none may be);
- facts: what ttnn itself says (device ids and count, cluster type; without chips, its errors);
- plans: ``device/ttnn.py`` ``_plan`` for MESH_DEVICE unset, the system's name, and TT_VISIBLE_DEVICES
  listing two chips; beside each, Tenstorrent's fabric rule applied to the same real cluster type.

PHASE "open" or "open with every device option": ``open_ttnn_device`` as far as ttnn lets it go here (it
stops at the missing kernel compiler), with ttnn's fabric state before, during and after, and every call our
source makes with ``*args``/``**kwargs`` checked against the real signature as it runs.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.real_ttnn.systems import REPO, SYSTEMS, System
from tests.ttnn_names.live import LiveNames, bind_problem
from tests.ttnn_names.used import collect

ALL_DEVICE_OPTIONS = {
    "dispatch_core_axis": "col",
    "fabric_reliability_mode": "RELAXED_INIT",
    "trace_region_size": 20_000_000,
    "worker_l1_size": 1_345_000,
    "l1_small_size": 24_576,
}


def activation(system: System | None) -> dict[str, Any]:
    from tt_vllm_plugin import register
    from tt_vllm_plugin.activation import DeviceSelectionError, resolve_device
    from tt_vllm_plugin.device.ttnn import ttnn_availability

    result: dict[str, Any] = {}
    for value in (None, "auto"):
        if value is not None:
            os.environ["TT_VLLM_DEVICE"] = value
        # The plugin's log handler writes to whatever sys.stderr is when it emits (tt_vllm_plugin/log.py).
        saved, sys.stderr = sys.stderr, io.StringIO()
        try:
            qualname = register()
            written = sys.stderr.getvalue()
        finally:
            sys.stderr = saved
        lines = [line.split("] ", 1)[1] for line in written.splitlines() if "[tt_vllm_plugin." in line]
        result[value or "unset"] = {"register": qualname, "log": lines}
    result["availability"] = list(ttnn_availability())
    result["vllm_or_torch_modules"] = sorted(m for m in sys.modules if m.split(".")[0] in ("vllm", "torch"))
    os.environ["TT_VLLM_DEVICE"] = "ttnn"
    try:
        result["ttnn_device"] = resolve_device().value
    except DeviceSelectionError as error:
        result["ttnn_device"] = f"{type(error).__name__}: {error}"
    del os.environ["TT_VLLM_DEVICE"]
    return result


def facts(ttnn: Any) -> dict[str, Any]:
    asks: dict[str, Callable[[], Any]] = {
        "device_ids": ttnn.get_device_ids,
        "get_num_devices": ttnn.get_num_devices,
        "GetNumAvailableDevices": ttnn.GetNumAvailableDevices,
        "cluster_type": lambda: ttnn.cluster.get_cluster_type().name,
    }
    result: dict[str, Any] = {}
    for name, ask in asks.items():
        try:
            result[name] = ask()
        except Exception as error:  # no chips: ttnn raises, with tt-metal's message and C++ backtrace
            result[name] = {"error": type(error).__name__, "text": str(error)}
    return result


def tenstorrent_fabric(ttnn: Any, num_devices: int) -> str | None:
    """Tenstorrent's default fabric (vllm-tt-plugin e3fc84941bf7a1d0df32aae2c50d539259c925f0 worker.py
    ``get_fabric_config`` without ``fabric_config``), decided as it decides: on the real cluster type."""
    if num_devices == 1:
        return None
    cluster_type = ttnn.cluster.get_cluster_type()
    if cluster_type == ttnn.cluster.ClusterType.BLACKHOLE_GALAXY:
        return "FABRIC_2D_TORUS_XY"
    if cluster_type == ttnn.cluster.ClusterType.GALAXY:
        return "FABRIC_1D_RING"
    return "FABRIC_1D"


def plans(ttnn: Any, system: System) -> dict[str, Any]:
    from tt_vllm_plugin.device.ttnn import _plan
    from tt_vllm_plugin.options import TTOptions

    cases: dict[str, tuple[str | None, str | None]] = {
        "unset": (None, None),
        "named": (system.mesh_device, None),
    }
    if len(system.device_ids) >= 2:
        cases["visible 0,1"] = (system.mesh_device, "0,1")
    result = {}
    for case, (mesh_device, visible) in cases.items():
        plan = _plan(ttnn, TTOptions(), mesh_device, visible)
        result[case] = {
            "shape": list(plan.shape),
            "fabric": plan.fabric.config if plan.fabric else None,
            "reliability_mode": plan.fabric.reliability_mode if plan.fabric else None,
            "tenstorrent_fabric": tenstorrent_fabric(ttnn, plan.num_devices),
        }
    return result


def install_spies(ttnn: Any, calls: list[dict[str, Any]]) -> None:
    """Put a checking wrapper in front of every ttnn function our source calls with ``*``/``**``: it checks
    the arguments against the real signature, notes ttnn's fabric state, and calls the real function."""
    unpacked = sorted({call.name for call in collect(REPO / "src").calls if call.unpacked})
    names = LiveNames(ttnn)
    for dotted in unpacked:
        owner_name, _, attribute = dotted.rpartition(".")
        owner = names.resolve(owner_name).obj
        real = getattr(owner, attribute)

        def spy(*args: Any, __real: Any = real, __name: str = dotted, **kwargs: Any) -> Any:
            calls.append(
                {
                    "name": __name,
                    "positional": len(args),
                    "keywords": sorted(kwargs),
                    "problem": bind_problem(__name, __real, args, kwargs),
                    "fabric_at_call": ttnn.get_fabric_config().name,
                }
            )
            return __real(*args, **kwargs)

        setattr(owner, attribute, spy)


# The opens, each alone in a process: a second open after a failed one can crash ttnn 0.81.1 (SIGSEGV in a
# device-initialisation thread, MetalContext::get_dispatch_core_manager, seen under load).
OPENS: dict[str, dict[str, Any]] = {"open": {}, "open with every device option": ALL_DEVICE_OPTIONS}


def open_once(ttnn: Any, system: System, values: dict[str, Any]) -> dict[str, Any]:
    from tt_vllm_plugin.device.ttnn import TTNNDeviceError, close_ttnn_device, open_ttnn_device
    from tt_vllm_plugin.options import TTOptions

    calls: list[dict[str, Any]] = []
    result: dict[str, Any] = {"fabric_before": ttnn.get_fabric_config().name, "calls": calls}
    install_spies(ttnn, calls)
    options = TTOptions.from_mapping(values, "tests/real_ttnn/probe.py")
    try:
        device = open_ttnn_device(options, system.mesh_device)
    except TTNNDeviceError as error:
        cause = error.__cause__
        result.update(
            error=str(error),
            cause=type(cause).__name__ if cause else None,
            cause_text=str(cause) if cause else None,
        )
    else:  # not expected without a kernel compiler; closed again all the same
        close_ttnn_device(device)
        result["opened"] = device.name
    result["fabric_after"] = ttnn.get_fabric_config().name
    return result


def main(name: str, phase: str, out: Path) -> None:
    system = SYSTEMS[name] if name else None
    report: dict[str, Any] = {}
    if phase == "detect":
        report["activation"] = activation(system)
    import ttnn

    report["ttnn_file"] = ttnn.__file__
    if phase == "detect":
        report["facts"] = facts(ttnn)
        if system is not None:
            report["plans"] = plans(ttnn, system)
    else:
        assert system is not None, "an open needs a system"
        report.update(open_once(ttnn, system, OPENS[phase]))
    out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
