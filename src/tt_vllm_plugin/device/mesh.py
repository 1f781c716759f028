"""Every decision about opening a Tenstorrent mesh, as pure functions: shape, fabric, device parameters.

No ttnn here. ``device/ttnn.py`` only carries out a :class:`MeshPlan`, so everything that can be decided
without hardware is decided (and tested) here. Names and defaults follow Tenstorrent's own vLLM
integration: ``MESH_DEVICE`` names a system, fabric is set only on multi-device meshes (1D, or a 1D ring
on Galaxy), and the trace region defaults to 50,000,000 bytes when tracing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tt_vllm_plugin.options import TTOptions

MESH_DEVICE_ENV = "MESH_DEVICE"
DEFAULT_TRACE_REGION_SIZE = 50_000_000
DEFAULT_FABRIC = "FABRIC_1D"
GALAXY_FABRIC = "FABRIC_1D_RING"
DEFAULT_RELIABILITY_MODE = "STRICT_INIT"
NO_FABRIC = "DISABLED"

# Systems by name (rows, columns). N = Wormhole cards, P = Blackhole cards, TG = Wormhole Galaxy.
NAMED_MESH_SHAPES: dict[str, tuple[int, int]] = {
    "N150": (1, 1),
    "N300": (1, 2),
    "N150x4": (1, 4),
    "T3K": (1, 8),
    "TG": (8, 4),
    "P100": (1, 1),
    "P150": (1, 1),
    "P300": (1, 2),
    "P150x2": (1, 2),
    "P150x4": (1, 4),
    "P150x8": (1, 8),
}
GALAXY_DEVICE_COUNT = 32
_LITERAL_SHAPE = re.compile(r"^\(?\s*(\d+)\s*,\s*(\d+)\s*\)?$")


class MeshConfigError(ValueError):
    pass


@dataclass(frozen=True)
class FabricPlan:
    config: str  # a ttnn.FabricConfig member name
    reliability_mode: str  # a ttnn.FabricReliabilityMode member name


@dataclass(frozen=True)
class MeshPlan:
    """What to open, and how; ``device/ttnn.py`` carries it out."""

    shape: tuple[int, int]
    fabric: FabricPlan | None
    dispatch_core_axis: str | None  # a ttnn.DispatchCoreAxis member name, None: ttnn's default
    device_params: dict[str, int]  # keyword arguments of ttnn.open_mesh_device
    devices_per_submesh: int  # devices each data-parallel model replica gets
    ignored: tuple[str, ...]  # options the user set that this mesh does not use

    @property
    def num_devices(self) -> int:
        return self.shape[0] * self.shape[1]


def mesh_shape(mesh_device: str | None, num_available: int) -> tuple[int, int]:
    """The mesh shape ``MESH_DEVICE`` asks for: a system name, a literal ``(rows, cols)``, or unset /
    empty for one row of every available device. Raises when it is unknown or larger than what is there."""
    if num_available < 1:
        raise MeshConfigError("ttnn reports no Tenstorrent devices, so no mesh can be opened.")
    value = (mesh_device or "").strip()
    if not value:
        return (1, num_available)
    shape = _named_shape(value) or _literal_shape(value)
    if shape is None:
        raise MeshConfigError(
            f"{MESH_DEVICE_ENV}={mesh_device!r} is not a known system: use one of "
            f"{', '.join(NAMED_MESH_SHAPES)}, a literal shape such as '(1,2)', or leave it unset for "
            f"(1, number of devices)."
        )
    rows, cols = shape
    if rows < 1 or cols < 1:
        raise MeshConfigError(f"{MESH_DEVICE_ENV}={mesh_device!r}: both mesh dimensions must be at least 1.")
    if rows * cols > num_available:
        raise MeshConfigError(
            f"{MESH_DEVICE_ENV}={mesh_device!r} asks for a {rows}x{cols} mesh ({rows * cols} devices) but "
            f"ttnn reports {num_available} device(s)."
        )
    return shape


def _named_shape(value: str) -> tuple[int, int] | None:
    by_upper = {name.upper(): shape for name, shape in NAMED_MESH_SHAPES.items()}
    return by_upper.get(value.upper())


def _literal_shape(value: str) -> tuple[int, int] | None:
    match = _LITERAL_SHAPE.match(value)
    return (int(match.group(1)), int(match.group(2))) if match else None


def is_galaxy(mesh_device: str | None, shape: tuple[int, int]) -> bool:
    """A Galaxy: named TG, or a 32-device mesh (only Galaxy systems have 32 chips in one mesh)."""
    name = (mesh_device or "").strip().upper()
    return name == "TG" or shape[0] * shape[1] == GALAXY_DEVICE_COUNT


def fabric_plan(options: TTOptions, num_devices: int, galaxy: bool) -> FabricPlan | None:
    """Fabric for a multi-device mesh (it must be set before the mesh opens); None: leave it off.

    A single device has no links to route over, so fabric is never set there, whatever was asked.
    """
    if num_devices <= 1:
        return None
    config = options.fabric_config or (GALAXY_FABRIC if galaxy else DEFAULT_FABRIC)
    if config == NO_FABRIC:
        return None
    return FabricPlan(config, options.fabric_reliability_mode or DEFAULT_RELIABILITY_MODE)


def device_params(options: TTOptions) -> dict[str, int]:
    """Keyword arguments of ``ttnn.open_mesh_device``: a trace region only when tracing (default
    50,000,000 bytes), L1 sizes only when set (ttnn's defaults otherwise)."""
    params: dict[str, int] = {}
    if options.trace_mode != "none":
        params["trace_region_size"] = options.trace_region_size or DEFAULT_TRACE_REGION_SIZE
    if options.worker_l1_size is not None:
        params["worker_l1_size"] = options.worker_l1_size
    if options.l1_small_size is not None:
        params["l1_small_size"] = options.l1_small_size
    return params


def dispatch_core_axis(options: TTOptions) -> str | None:
    return options.dispatch_core_axis.upper() if options.dispatch_core_axis else None


def devices_per_submesh(shape: tuple[int, int], data_parallel: int) -> int:
    """Devices per data-parallel replica. tt-metal's models split the mesh into ``data_parallel``
    submeshes themselves; this checks the split is possible before any device is touched."""
    num_devices = shape[0] * shape[1]
    if data_parallel < 1 or num_devices % data_parallel:
        raise MeshConfigError(
            f"TT option 'data_parallel'={data_parallel} does not divide the {shape[0]}x{shape[1]} mesh "
            f"({num_devices} devices) into equal submeshes; use a divisor of {num_devices}."
        )
    return num_devices // data_parallel


def ignored_on_mesh(options: TTOptions, num_devices: int) -> tuple[str, ...]:
    """Options the user set that this particular mesh does not use."""
    ignored = []
    if num_devices <= 1:
        ignored += [name for name in ("fabric_config", "fabric_reliability_mode") if name in options.given]
    if options.trace_mode == "none" and "trace_region_size" in options.given:
        ignored.append("trace_region_size")
    return tuple(ignored)


def plan_mesh(options: TTOptions, mesh_device: str | None, num_available: int) -> MeshPlan:
    """Everything needed to open the mesh, decided before any device is touched."""
    shape = mesh_shape(mesh_device, num_available)
    num_devices = shape[0] * shape[1]
    return MeshPlan(
        shape=shape,
        fabric=fabric_plan(options, num_devices, is_galaxy(mesh_device, shape)),
        dispatch_core_axis=dispatch_core_axis(options),
        device_params=device_params(options),
        devices_per_submesh=devices_per_submesh(shape, options.data_parallel),
        ignored=ignored_on_mesh(options, num_devices),
    )
