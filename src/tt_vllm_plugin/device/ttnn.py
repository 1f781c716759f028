"""The only module that calls ``ttnn``: hardware detection, and opening and closing the mesh.

What to open (shape, fabric, parameters) is decided in ``device/mesh.py``; this module only asks ttnn what
a plan needs (device count, cluster type) and carries the plan out, in the order ttnn needs: fabric before
the mesh opens; on close the mesh's command queues drained, submeshes closed before the mesh, fabric reset
last; and nothing left set when opening fails half-way. The sequence is Tenstorrent's
(tenstorrent/vllm-tt-plugin e3fc84941bf7a1d0df32aae2c50d539259c925f0, ``worker.py`` ``open_mesh_device``
and ``close_mesh_device``) plus the drain ttnn 0.81.1 documents for meshes with submeshes.

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

from tt_vllm_plugin.device.mesh import (
    MESH_DEVICE_ENV,
    NO_FABRIC,
    VISIBLE_DEVICES_ENV,
    MeshPlan,
    mesh_shape,
    needs_cluster_type,
    plan_mesh,
    requested_mesh_shape,
)
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


def _cluster_type(ttnn: ModuleType) -> str | None:
    """``ttnn.cluster.get_cluster_type()``'s member name, which picks the fabric default (Tenstorrent's
    ``get_fabric_config``); None when this ttnn cannot say (then device/mesh.py falls back on the name)."""
    try:
        return str(ttnn.cluster.get_cluster_type().name)
    except Exception as error:  # an older ttnn without ttnn.cluster, or the query failed
        logger.warning("ttnn could not report the cluster type (%s); fabric default from MESH_DEVICE.", error)
        return None


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
    # The TT option when the user set it, else None: Tenstorrent passes optimizations=None then, and
    # some tt-metal generators assert exactly that (generator_vllm.py Mistral3/GptOss classes).
    optimizations: str | None
    closed: bool = False

    @property
    def num_devices(self) -> int:
        return self.plan.num_devices

    @property
    def devices_per_submesh(self) -> int:
        """Devices each data-parallel model replica (and its copy of the KV cache) spans."""
        return self.plan.devices_per_submesh

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
    plan = _plan(ttnn, options, env_value, os.environ.get(VISIBLE_DEVICES_ENV))
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
    optimizations = options.optimizations if "optimizations" in options.given else None
    device = TTNNDevice(mesh, plan, options.trace_mode, options.data_parallel, optimizations)
    logger.info("Opened the %s", device.name)
    return device


def _plan(ttnn: ModuleType, options: TTOptions, env_value: str | None, visible: str | None) -> MeshPlan:
    """The plan, with the cluster type asked only when the fabric default depends on it."""
    count = _device_count(ttnn)
    shape = mesh_shape(env_value, count, visible)  # raises before ttnn is asked anything more
    if shape != requested_mesh_shape(env_value, count):
        logger.warning(
            "%s=%r lists %d device(s): opening a %dx%d mesh instead of the one %s=%r names.",
            VISIBLE_DEVICES_ENV,
            visible,
            shape[1],
            *shape,
            MESH_DEVICE_ENV,
            env_value,
        )
    cluster = _cluster_type(ttnn) if needs_cluster_type(options, shape[0] * shape[1]) else None
    return plan_mesh(options, env_value, count, cluster, visible)


def close_ttnn_device(device: TTNNDevice) -> None:
    """Drain the command queues if there are submeshes, close submeshes, then the mesh, then reset
    fabric; every step runs even if one fails, and the failures are raised together at the end. Closing
    twice does nothing."""
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
    submeshes = attempt("listing submeshes", device.mesh.get_submeshes) or []
    # ttnn 0.81.1's MeshDevice.quiesce_devices: "Call before closing a mesh that has carved submeshes so
    # the shared command queue is idle, otherwise close throws 'cq is in use by child submesh'".
    # Tenstorrent's close_mesh_device does not call it; older ttnn releases do not have it.
    if submeshes and hasattr(device.mesh, "quiesce_devices"):
        attempt("draining the command queues", device.mesh.quiesce_devices)
    for submesh in submeshes:
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
