"""The only module that calls ``ttnn``: hardware detection, and opening and closing the mesh.

What to open (shape, fabric, parameters) is decided in ``device/mesh.py``; this module only carries out
that plan, in the order ttnn needs: fabric before the mesh opens, submeshes before the mesh on close,
fabric reset last, and nothing left set when opening fails half-way.

ttnn cannot be installed on the machines this project is developed and tested on (its wheels are for
Python 3.10/3.12 and it needs a card). The call order and error handling here are tested against a
stand-in module (tests/unit/test_ttnn_lifecycle.py); what real ttnn and hardware do is untested here.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from tt_vllm_plugin.device.mesh import MESH_DEVICE_ENV, NO_FABRIC, MeshPlan, plan_mesh
from tt_vllm_plugin.log import get_logger
from tt_vllm_plugin.options import TTOptions

logger = get_logger(__name__)


class TTNNDeviceError(RuntimeError):
    pass


def _import_ttnn() -> ModuleType:
    import ttnn  # untested here: no ttnn on CI machines

    return ttnn


def _device_count(ttnn: ModuleType) -> int:
    # get_num_devices is what Tenstorrent's plugin uses; older ttnn releases only have the C++ name.
    count = getattr(ttnn, "get_num_devices", None) or ttnn.GetNumAvailableDevices
    return int(count())


@functools.cache
def ttnn_availability() -> tuple[bool, str]:
    """(usable, reason): ttnn imports and reports at least one device."""
    try:
        ttnn = _import_ttnn()
    except Exception as error:  # ImportError, or a broken install raising anything
        return False, f"ttnn is not importable ({type(error).__name__}: {error})"
    try:
        count = _device_count(ttnn)
    except Exception as error:
        return False, f"ttnn could not count devices ({type(error).__name__}: {error})"
    if count < 1:
        return False, "ttnn reports no Tenstorrent devices"
    return True, f"ttnn reports {count} device(s)"


@dataclass
class TTNNDevice:
    """An open mesh plus the run settings a tt-metal model needs with it; stands where the host
    device's :class:`~tt_vllm_plugin.device.host.HostDevice` does."""

    mesh: Any  # ttnn.MeshDevice
    plan: MeshPlan
    trace_mode: str
    data_parallel: int
    optimizations: str
    closed: bool = False

    @property
    def num_devices(self) -> int:
        return self.plan.num_devices

    def wait_for_events(self, events: Iterable[Any]) -> None:
        """Wait for the events a tt-metal generator's ``read_decode_output(..., async_read=True)``
        returned (its device-to-host copies)."""
        ttnn = _import_ttnn()
        for event in events:
            ttnn.event_synchronize(event)

    @property
    def name(self) -> str:
        rows, cols = self.plan.shape
        fabric = self.plan.fabric.config if self.plan.fabric else "no fabric"
        return f"ttnn ({rows}x{cols} mesh, {self.num_devices} device(s), {fabric})"


def _member(enum: Any, name: str, what: str) -> Any:
    """``enum.<name>``, or an error listing what the installed ttnn offers."""
    members = getattr(enum, "__members__", None) or {}
    if name in members:
        return members[name]
    raise TTNNDeviceError(
        f"{what} {name!r} is not offered by the installed ttnn (it has: {', '.join(members) or 'none'}); "
        "pick one of those or upgrade tt-metal."
    )


def open_ttnn_device(options: TTOptions, mesh_device: str | None = None) -> TTNNDevice:
    """Open the mesh ``MESH_DEVICE`` (or ``mesh_device``) names, set up as ``options`` ask."""
    ttnn = _import_ttnn()
    env_value = mesh_device if mesh_device is not None else os.environ.get(MESH_DEVICE_ENV)
    plan = plan_mesh(options, env_value, _device_count(ttnn))
    if plan.ignored:
        logger.warning(
            "TT option(s) %s have no effect on a %dx%d mesh and are ignored.",
            ", ".join(plan.ignored),
            *plan.shape,
        )
    # Resolve every name first, so an option the installed ttnn lacks fails before anything is set.
    fabric = None
    if plan.fabric is not None:
        fabric = (
            _member(ttnn.FabricConfig, plan.fabric.config, "fabric_config"),
            _member(ttnn.FabricReliabilityMode, plan.fabric.reliability_mode, "fabric_reliability_mode"),
        )
    open_kwargs: dict[str, Any] = dict(plan.device_params)
    if plan.dispatch_core_axis is not None:
        axis = _member(ttnn.DispatchCoreAxis, plan.dispatch_core_axis, "dispatch_core_axis")
        open_kwargs["dispatch_core_config"] = ttnn.DispatchCoreConfig(axis=axis)

    try:
        if fabric is not None:
            logger.info("Setting fabric %s (%s)", plan.fabric.config, plan.fabric.reliability_mode)
            ttnn.set_fabric_config(*fabric)
        mesh = ttnn.open_mesh_device(mesh_shape=ttnn.MeshShape(*plan.shape), **open_kwargs)
    except BaseException as error:
        if fabric is not None:
            _reset_fabric(ttnn)
        if not isinstance(error, Exception):  # KeyboardInterrupt and the like pass through as they are
            raise
        rows, cols = plan.shape
        raise TTNNDeviceError(
            f"Could not open the {rows}x{cols} Tenstorrent mesh ({MESH_DEVICE_ENV}={env_value!r}, "
            f"parameters {open_kwargs}): {type(error).__name__}: {error}"
        ) from error
    device = TTNNDevice(mesh, plan, options.trace_mode, options.data_parallel, options.optimizations)
    logger.info("Opened the %s", device.name)
    return device


def close_ttnn_device(device: TTNNDevice) -> None:
    """Close submeshes, then the mesh, then reset fabric; every step runs even if one fails, and the
    failures are raised together at the end. Closing twice does nothing."""
    if device.closed:
        return
    device.closed = True
    ttnn = _import_ttnn()
    failures: list[str] = []

    def attempt(step: str, action: Any, *args: Any) -> Any:
        try:
            return action(*args)
        except Exception as error:
            logger.error("Closing the Tenstorrent mesh: %s failed: %s", step, error)
            failures.append(f"{step}: {type(error).__name__}: {error}")
            return None

    read_profiler = getattr(ttnn, "ReadDeviceProfiler", None)  # no-op unless built with the profiler
    if read_profiler is not None:
        attempt("reading the device profiler", read_profiler, device.mesh)
    for submesh in attempt("listing submeshes", device.mesh.get_submeshes) or []:
        attempt("closing a data-parallel submesh", ttnn.close_mesh_device, submesh)
    attempt("closing the mesh", ttnn.close_mesh_device, device.mesh)
    if device.plan.fabric is not None:
        attempt("resetting fabric", _set_fabric_disabled, ttnn)
    if failures:
        raise TTNNDeviceError("Closing the Tenstorrent mesh failed: " + "; ".join(failures))
    logger.info("Closed the %s", device.name)


def _set_fabric_disabled(ttnn: ModuleType) -> None:
    ttnn.set_fabric_config(_member(ttnn.FabricConfig, NO_FABRIC, "fabric_config"))


def _reset_fabric(ttnn: ModuleType) -> None:
    """Best effort after a failed open: the open error is the one the user needs to see."""
    try:
        _set_fabric_disabled(ttnn)
    except Exception as error:
        logger.error("Resetting fabric after a failed mesh open also failed: %s", error)
