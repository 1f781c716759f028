"""The only module that calls ``ttnn``: hardware detection, and opening and closing the mesh.

What to open (shape, fabric, parameters) is decided in ``device/mesh.py``; this module only asks ttnn what
a plan needs (device count, cluster type) and carries the plan out, in the order ttnn needs: fabric before
the mesh opens; on close the mesh's command queues drained, submeshes closed before the mesh, fabric reset
last; and nothing left set when opening fails half-way. The sequence is Tenstorrent's
(tenstorrent/vllm-tt-plugin e3fc84941bf7a1d0df32aae2c50d539259c925f0, ``worker.py`` ``open_mesh_device``
and ``close_mesh_device``) plus the drain ttnn 0.81.1 documents for meshes with submeshes.

Tested twice: the call order and error handling against a stand-in module (tests/unit/test_ttnn_lifecycle.py),
and everything short of an open mesh against the real ttnn 0.81.1 with tt-umd's cluster descriptors standing
in for cards (tests/real_ttnn, in .venv-ttnn): detection, the plan, the calls' arguments against the real
signatures, and the failed open (no kernel compiler there). Every ttnn call is written out directly (no
``*args``/``**kwargs`` where avoidable, no calls through variables) so those tests can read it from the
source.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:  # options.py asks this module for the installed ttnn's fabrics: no import back
    from tt_vllm_plugin.options import TTOptions

logger = get_logger(__name__)


class TTNNDeviceError(RuntimeError):
    pass


# tt-metal's TT_THROW / TT_FATAL messages: "TT_FATAL @ <file>:<line>: <condition>\ninfo:\n<message>\n
# backtrace:\n<20-odd C++ frames>" (as ttnn 0.81.1 raises them, e.g. "No chips detected in the cluster").
_TT_ASSERT = re.compile(r"(TT_(?:THROW|FATAL) @ [^\s:]+:\d+)[^\n]*\ninfo:\n(.*?)(?:\nbacktrace:\n.*)?", re.S)


def describe_error(error: BaseException) -> str:
    """``Type: message`` on one line: tt-metal's own message and where it was raised, without the C++
    backtrace (the exception chained to ours keeps it)."""
    text = str(error)
    match = _TT_ASSERT.fullmatch(text)
    if match is not None:
        text = f"{match.group(2).strip()} ({match.group(1)})"
    else:
        text = text.split("\nbacktrace:\n", 1)[0]
    return f"{type(error).__name__}: {' '.join(text.split())}"


def _import_ttnn() -> ModuleType:
    import ttnn  # untested here: no ttnn on CI machines

    return ttnn


def _device_count(ttnn: ModuleType) -> int:
    # get_num_devices is what Tenstorrent's plugin uses; older ttnn releases only have the C++ name.
    # Without chips ttnn 0.81.1 raises RuntimeError ("No chips detected in the cluster"); it never returns 0.
    if hasattr(ttnn, "get_num_devices"):
        return int(ttnn.get_num_devices())
    return int(ttnn.GetNumAvailableDevices())


def _cluster_type(ttnn: ModuleType) -> str | None:
    """``ttnn.cluster.get_cluster_type()``'s member name, which picks the fabric default (Tenstorrent's
    ``get_fabric_config``); None when this ttnn cannot say (then device/mesh.py falls back on the name)."""
    try:
        return str(ttnn.cluster.get_cluster_type().name)
    except Exception as error:  # an older ttnn without ttnn.cluster, or the query failed
        logger.warning(
            "ttnn could not report the cluster type (%s); fabric default from MESH_DEVICE.",
            describe_error(error),
        )
        return None


def installed_enum_members(enum: str) -> tuple[str, ...] | None:
    """The member names of ``ttnn.<enum>`` in the installed ttnn, in its order; None where ttnn is not
    importable (the host device; tt-serve checking options in a backend's environment without ttnn).
    Imports ttnn but asks it nothing about devices."""
    try:
        ttnn = _import_ttnn()
    except Exception:  # not installed, or broken: ttnn_availability() says which, where it matters
        return None
    return tuple(getattr(getattr(ttnn, enum, None), "__members__", None) or ())  # none: it offers none


@functools.cache
def ttnn_availability() -> tuple[bool, str]:
    """(usable, reason): ttnn imports and reports at least one device."""
    try:
        ttnn = _import_ttnn()
    except Exception as error:  # ImportError, or a broken install raising anything
        return False, f"ttnn is not importable ({describe_error(error)})"
    try:
        count = _device_count(ttnn)
    except Exception as error:
        return False, f"ttnn could not count devices ({describe_error(error)})"
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
    fabric_config = reliability_mode = None
    if plan.fabric is not None:
        fabric_config = _member(ttnn.FabricConfig, plan.fabric.config, "fabric_config")
        reliability_mode = _member(
            ttnn.FabricReliabilityMode, plan.fabric.reliability_mode, "fabric_reliability_mode"
        )
    open_kwargs: dict[str, Any] = dict(plan.device_params)
    asked: dict[str, Any] = dict(plan.device_params)  # for the error message: names, not ttnn objects
    if plan.dispatch_core_axis is not None:
        axis = _member(ttnn.DispatchCoreAxis, plan.dispatch_core_axis, "dispatch_core_axis")
        open_kwargs["dispatch_core_config"] = ttnn.DispatchCoreConfig(axis=axis)
        asked["dispatch_core_axis"] = plan.dispatch_core_axis
    rows, cols = plan.shape

    try:
        if plan.fabric is not None:
            logger.info("Setting fabric %s (%s)", plan.fabric.config, plan.fabric.reliability_mode)
            ttnn.set_fabric_config(fabric_config, reliability_mode)
        mesh = ttnn.open_mesh_device(mesh_shape=ttnn.MeshShape(rows, cols), **open_kwargs)
    except BaseException as error:
        if plan.fabric is not None:
            _reset_fabric(ttnn)
        if not isinstance(error, Exception):  # KeyboardInterrupt and the like pass through as they are
            raise
        raise TTNNDeviceError(
            f"Could not open the {rows}x{cols} Tenstorrent mesh ({MESH_DEVICE_ENV}={env_value!r}, "
            f"parameters {asked}): {describe_error(error)}"
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

    @contextmanager
    def attempt(step: str) -> Iterator[None]:
        try:
            yield
        except Exception as error:
            logger.error("Closing the Tenstorrent mesh: %s failed: %s", step, describe_error(error))
            failures.append(f"{step}: {describe_error(error)}")

    if hasattr(ttnn, "ReadDeviceProfiler"):  # a no-op unless ttnn is built with the profiler
        with attempt("reading the device profiler"):
            ttnn.ReadDeviceProfiler(device.mesh)
    submeshes: list[Any] = []
    with attempt("listing submeshes"):
        submeshes = list(device.mesh.get_submeshes())
    # ttnn 0.81.1's MeshDevice.quiesce_devices: "Call before closing a mesh that has carved submeshes so
    # the shared command queue is idle, otherwise close throws 'cq is in use by child submesh'".
    # Tenstorrent's close_mesh_device does not call it; older ttnn releases do not have it.
    if submeshes and hasattr(device.mesh, "quiesce_devices"):
        with attempt("draining the command queues"):
            device.mesh.quiesce_devices()
    for submesh in submeshes:
        with attempt("closing a data-parallel submesh"):
            ttnn.close_mesh_device(submesh)
    with attempt("closing the mesh"):
        ttnn.close_mesh_device(device.mesh)
    if device.plan.fabric is not None:
        with attempt("resetting fabric"):
            _set_fabric_disabled(ttnn)
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
        logger.error("Resetting fabric after a failed mesh open also failed: %s", describe_error(error))
