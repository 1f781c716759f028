"""Every decision about opening a Tenstorrent mesh, as pure functions: shape, fabric, device parameters.

No ttnn here. ``device/ttnn.py`` only carries out a :class:`MeshPlan` (and asks ttnn the two facts a
plan needs: the device count and the cluster type), so everything that can be decided without hardware is
decided (and tested) here. Names and defaults follow Tenstorrent's own vLLM integration
(tenstorrent/vllm-tt-plugin e3fc84941bf7a1d0df32aae2c50d539259c925f0: ``worker.py`` ``get_fabric_config``,
``_resolve_mesh_grid``, ``device_params_from_tt_config``; ``utils/dp_discovery.py`` ``parse_mesh_grid``):
``MESH_DEVICE`` names a system, ``TT_VISIBLE_DEVICES`` narrows it, fabric is set only on multi-device
meshes and defaults by cluster type, and the trace region defaults to 50,000,000 bytes when tracing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tt_vllm_plugin import envs

if TYPE_CHECKING:  # options.py asks device/ttnn.py for the installed ttnn's fabrics: no import back
    from tt_vllm_plugin.options import TTOptions

MESH_DEVICE_ENV = envs.MESH_DEVICE.name
# tt-metal reads it itself (the chips it opens); Tenstorrent's runner also sizes the mesh from it.
VISIBLE_DEVICES_ENV = envs.TT_VISIBLE_DEVICES.name
DEFAULT_TRACE_REGION_SIZE = 50_000_000
DEFAULT_FABRIC = "FABRIC_1D"
GALAXY_FABRIC = "FABRIC_1D_RING"
# Blackhole Galaxy: column-axis collectives have no wraparound path on 1D fabrics (Tenstorrent's
# get_fabric_config, vllm-tt-plugin 71281bd "default BH Galaxy to 2D torus").
BLACKHOLE_GALAXY_FABRIC = "FABRIC_2D_TORUS_XY"
DEFAULT_RELIABILITY_MODE = "STRICT_INIT"
NO_FABRIC = "DISABLED"
# ttnn.cluster.ClusterType member names that change the fabric default (ttnn 0.81.1).
GALAXY_CLUSTER = "GALAXY"
BLACKHOLE_GALAXY_CLUSTER = "BLACKHOLE_GALAXY"
FABRIC_BY_CLUSTER_TYPE: dict[str, str] = {
    BLACKHOLE_GALAXY_CLUSTER: BLACKHOLE_GALAXY_FABRIC,
    GALAXY_CLUSTER: GALAXY_FABRIC,
}
BLACKHOLE_GALAXY_NAME = "BH-GALAXY"  # MESH_DEVICE name, upper-cased

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
    "P300x2": (1, 4),  # two P300 cards, four Blackhole chips
    "BH-Galaxy": (8, 4),  # 32 P150 chips in the Wormhole Galaxy's topology, so TG's grid
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


def visible_device_count(visible_devices: str | None) -> int | None:
    """How many devices ``TT_VISIBLE_DEVICES`` lists (comma-separated ids), None when unset or empty.
    Only counted, as Tenstorrent's runner does: tt-metal itself checks the ids."""
    ids = [part for part in (visible_devices or "").split(",") if part.strip()]
    return len(ids) or None


def mesh_shape(
    mesh_device: str | None, num_available: int, visible_devices: str | None = None
) -> tuple[int, int]:
    """The mesh shape ``MESH_DEVICE`` asks for: a system name, a literal ``(rows, cols)``, or unset /
    empty for one row of every available device. Raises when it is unknown or larger than what is there.

    With ``TT_VISIBLE_DEVICES`` set, a shape that does not cover exactly the listed devices becomes one
    row of them, as in Tenstorrent's ``_resolve_mesh_grid`` (there ``MESH_DEVICE`` may name the whole
    system while each process sees a share of it).
    """
    shape = requested_mesh_shape(mesh_device, num_available)
    visible = visible_device_count(visible_devices)
    if visible is not None and shape[0] * shape[1] != visible:
        shape = (1, visible)
    _check_fits(shape, mesh_device, num_available)
    return shape


def requested_mesh_shape(mesh_device: str | None, num_available: int) -> tuple[int, int]:
    """The shape ``MESH_DEVICE`` names, before ``TT_VISIBLE_DEVICES`` is applied."""
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
    return shape


def _check_fits(shape: tuple[int, int], mesh_device: str | None, num_available: int) -> None:
    rows, cols = shape
    if rows * cols > num_available:
        raise MeshConfigError(
            f"{MESH_DEVICE_ENV}={mesh_device!r} asks for a {rows}x{cols} mesh ({rows * cols} devices) but "
            f"ttnn reports {num_available} device(s)."
        )


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


def needs_cluster_type(options: TTOptions, num_devices: int) -> bool:
    """Whether the fabric default is needed (and so ttnn's cluster type): multi-device, none asked for."""
    return num_devices > 1 and options.fabric_config is None


def default_fabric(cluster_type: str | None, mesh_device: str | None, shape: tuple[int, int]) -> str:
    """The fabric a multi-device mesh gets unless ``fabric_config`` says otherwise.

    ``cluster_type`` is ``ttnn.cluster.get_cluster_type().name``, what Tenstorrent's runner decides by
    (Blackhole Galaxy: 2D torus XY; Wormhole Galaxy: 1D ring; anything else: 1D). None (a ttnn without
    ``ttnn.cluster``, or the query failed): the system's name or size decides instead.
    """
    if cluster_type is not None:
        return FABRIC_BY_CLUSTER_TYPE.get(cluster_type, DEFAULT_FABRIC)
    if (mesh_device or "").strip().upper() == BLACKHOLE_GALAXY_NAME:
        return BLACKHOLE_GALAXY_FABRIC
    return GALAXY_FABRIC if is_galaxy(mesh_device, shape) else DEFAULT_FABRIC


def fabric_plan(
    options: TTOptions, num_devices: int, default_config: str = DEFAULT_FABRIC
) -> FabricPlan | None:
    """Fabric for a multi-device mesh (it must be set before the mesh opens); None: leave it off.

    A single device has no links to route over, so fabric is never set there, whatever was asked.
    """
    if num_devices <= 1:
        return None
    config = options.fabric_config or default_config
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


def kv_heads_per_device(num_kv_heads: int, devices_per_submesh: int) -> int:
    """KV heads in each device's cache: tt-metal's models split the heads over a submesh's devices, and
    ``allocate_vllm_kv_cache`` (tt-metal's models/ttt_compat/tt/generator_vllm.py) replicates the shape it is
    given on every device, so the shape must already be per device. Tenstorrent's ``_kv_cache_shape``
    (vllm-tt-plugin model_runner.py): ``num_kv_heads // min(devices per submesh, num_kv_heads)``
    (more devices than heads: one head each, replicated)."""
    return num_kv_heads // min(max(devices_per_submesh, 1), num_kv_heads)


def ignored_on_mesh(options: TTOptions, num_devices: int) -> tuple[str, ...]:
    """Options the user set that this particular mesh does not use."""
    ignored = []
    if num_devices <= 1:
        ignored += [name for name in ("fabric_config", "fabric_reliability_mode") if name in options.given]
    if options.trace_mode == "none" and "trace_region_size" in options.given:
        ignored.append("trace_region_size")
    return tuple(ignored)


def plan_mesh(
    options: TTOptions,
    mesh_device: str | None,
    num_available: int,
    cluster_type: str | None = None,
    visible_devices: str | None = None,
) -> MeshPlan:
    """Everything needed to open the mesh, decided before any device is touched."""
    shape = mesh_shape(mesh_device, num_available, visible_devices)
    num_devices = shape[0] * shape[1]
    return MeshPlan(
        shape=shape,
        fabric=fabric_plan(options, num_devices, default_fabric(cluster_type, mesh_device, shape)),
        dispatch_core_axis=dispatch_core_axis(options),
        device_params=device_params(options),
        devices_per_submesh=devices_per_submesh(shape, options.data_parallel),
        ignored=ignored_on_mesh(options, num_devices),
    )
