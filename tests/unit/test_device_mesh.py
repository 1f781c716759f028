"""The pure decisions behind opening a Tenstorrent mesh (device/mesh.py), table by table."""

from __future__ import annotations

import pytest

from tt_vllm_plugin.device.mesh import (
    DEFAULT_TRACE_REGION_SIZE,
    FabricPlan,
    MeshConfigError,
    default_fabric,
    device_params,
    devices_per_submesh,
    dispatch_core_axis,
    fabric_plan,
    ignored_on_mesh,
    is_galaxy,
    kv_heads_per_device,
    mesh_shape,
    plan_mesh,
)
from tt_vllm_plugin.options import TTOptions


def opts(**values) -> TTOptions:
    return TTOptions.from_mapping(values, "test")


@pytest.mark.parametrize(
    ("value", "available", "shape"),
    [
        ("N150", 1, (1, 1)),
        ("N300", 2, (1, 2)),
        ("N150x4", 4, (1, 4)),
        ("T3K", 8, (1, 8)),
        ("TG", 32, (8, 4)),
        ("P100", 1, (1, 1)),
        ("P150", 1, (1, 1)),
        ("P300", 2, (1, 2)),
        ("P150x2", 2, (1, 2)),
        ("P150x4", 4, (1, 4)),
        ("P150x8", 8, (1, 8)),
        ("t3k", 8, (1, 8)),  # names are case-insensitive
        (" N300 ", 8, (1, 2)),  # a smaller mesh than what is there is fine
        ("(2,4)", 8, (2, 4)),
        ("( 1 , 2 )", 2, (1, 2)),
        ("1,8", 8, (1, 8)),
        (None, 4, (1, 4)),
        ("", 2, (1, 2)),
    ],
)
def test_mesh_shape(value, available, shape):
    assert mesh_shape(value, available) == shape


@pytest.mark.parametrize(
    ("value", "available", "message"),
    [
        ("N600", 8, "MESH_DEVICE='N600' is not a known system: use one of N150, N300, N150x4, T3K, TG, P100"),
        ("(1,2,3)", 8, "MESH_DEVICE='(1,2,3)' is not a known system"),
        ("(a,b)", 8, "is not a known system"),
        ("(0,2)", 8, "MESH_DEVICE='(0,2)': both mesh dimensions must be at least 1."),
        ("T3K", 2, "MESH_DEVICE='T3K' asks for a 1x8 mesh (8 devices) but ttnn reports 2 device(s)."),
        ("(4,8)", 8, "asks for a 4x8 mesh (32 devices) but ttnn reports 8 device(s)."),
        (None, 0, "ttnn reports no Tenstorrent devices, so no mesh can be opened."),
    ],
)
def test_bad_mesh_device_is_explained(value, available, message):
    with pytest.raises(MeshConfigError) as error:
        mesh_shape(value, available)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("value", "shape", "galaxy"),
    [("TG", (8, 4), True), ("tg", (8, 4), True), ("(4,8)", (4, 8), True), (None, (1, 32), True)]
    + [("T3K", (1, 8), False), ("N300", (1, 2), False), (None, (1, 1), False)],
)
def test_is_galaxy(value, shape, galaxy):
    assert is_galaxy(value, shape) is galaxy


@pytest.mark.parametrize(
    ("values", "num_devices", "default", "plan"),
    [
        ({}, 1, "FABRIC_1D", None),  # one chip: no links, no fabric
        ({"fabric_config": "FABRIC_2D"}, 1, "FABRIC_1D", None),  # ... whatever was asked
        ({}, 2, "FABRIC_1D", FabricPlan("FABRIC_1D", "STRICT_INIT")),
        ({}, 8, "FABRIC_1D", FabricPlan("FABRIC_1D", "STRICT_INIT")),
        ({}, 32, "FABRIC_1D_RING", FabricPlan("FABRIC_1D_RING", "STRICT_INIT")),
        ({"fabric_config": "FABRIC_2D"}, 32, "FABRIC_1D_RING", FabricPlan("FABRIC_2D", "STRICT_INIT")),
        (
            {"fabric_reliability_mode": "RELAXED_INIT"},
            8,
            "FABRIC_1D",
            FabricPlan("FABRIC_1D", "RELAXED_INIT"),
        ),
        ({"fabric_config": "DISABLED"}, 8, "FABRIC_1D", None),
    ],
)
def test_fabric_plan(values, num_devices, default, plan):
    assert fabric_plan(opts(**values), num_devices, default) == plan


@pytest.mark.parametrize(
    ("values", "params"),
    [
        ({}, {"trace_region_size": DEFAULT_TRACE_REGION_SIZE}),
        ({"trace_mode": "decode_only"}, {"trace_region_size": 50_000_000}),
        ({"trace_region_size": 90_000_000}, {"trace_region_size": 90_000_000}),
        ({"trace_mode": "none"}, {}),
        ({"trace_mode": "none", "trace_region_size": 1}, {}),  # no trace, no trace region
        ({"worker_l1_size": 1_345_000}, {"trace_region_size": 50_000_000, "worker_l1_size": 1_345_000}),
        ({"trace_mode": "none", "l1_small_size": 24_576}, {"l1_small_size": 24_576}),
    ],
)
def test_device_params(values, params):
    assert device_params(opts(**values)) == params


@pytest.mark.parametrize(("axis", "expected"), [(None, None), ("row", "ROW"), ("col", "COL")])
def test_dispatch_core_axis(axis, expected):
    assert dispatch_core_axis(opts(dispatch_core_axis=axis)) == expected


@pytest.mark.parametrize(
    ("shape", "data_parallel", "per_submesh"),
    [((1, 1), 1, 1), ((1, 8), 1, 8), ((1, 8), 2, 4), ((1, 8), 8, 1), ((8, 4), 4, 8), ((8, 4), 32, 1)],
)
def test_devices_per_submesh(shape, data_parallel, per_submesh):
    assert devices_per_submesh(shape, data_parallel) == per_submesh


@pytest.mark.parametrize(("shape", "data_parallel"), [((1, 8), 3), ((1, 2), 4), ((1, 1), 2), ((8, 4), 0)])
def test_uneven_data_parallel_split_is_refused(shape, data_parallel):
    with pytest.raises(MeshConfigError, match=f"TT option 'data_parallel'={data_parallel} does not divide"):
        devices_per_submesh(shape, data_parallel)


@pytest.mark.parametrize(
    ("values", "num_devices", "ignored"),
    [
        (
            {"fabric_config": "FABRIC_1D", "fabric_reliability_mode": "RELAXED_INIT"},
            1,
            ("fabric_config", "fabric_reliability_mode"),
        ),
        ({"fabric_config": "FABRIC_1D"}, 2, ()),
        ({"trace_mode": "none", "trace_region_size": 5}, 2, ("trace_region_size",)),
        ({"trace_region_size": 5}, 1, ()),
        ({}, 1, ()),
    ],
)
def test_ignored_on_mesh(values, num_devices, ignored):
    assert ignored_on_mesh(opts(**values), num_devices) == ignored


def test_plan_mesh_puts_it_together():
    plan = plan_mesh(opts(dispatch_core_axis="col", data_parallel=2, l1_small_size=8), "T3K", 8)
    assert plan.shape == (1, 8) and plan.num_devices == 8
    assert plan.fabric == FabricPlan("FABRIC_1D", "STRICT_INIT")
    assert plan.dispatch_core_axis == "COL"
    assert plan.device_params == {"trace_region_size": 50_000_000, "l1_small_size": 8}
    assert plan.devices_per_submesh == 4 and plan.ignored == ()
    galaxy = plan_mesh(opts(), "TG", 32)
    assert galaxy.shape == (8, 4) and galaxy.fabric == FabricPlan("FABRIC_1D_RING", "STRICT_INIT")
    single = plan_mesh(opts(fabric_config="FABRIC_2D"), None, 1)
    assert single.fabric is None and single.ignored == ("fabric_config",)


def test_plan_mesh_checks_data_parallel_before_anything_opens():
    with pytest.raises(MeshConfigError, match="does not divide the 1x2 mesh"):
        plan_mesh(opts(data_parallel=4), "N300", 2)


@pytest.mark.parametrize(
    ("value", "available", "shape"),
    [("P300x2", 4, (1, 4)), ("BH-Galaxy", 32, (8, 4)), ("bh-galaxy", 32, (8, 4))],
)
def test_blackhole_system_names(value, available, shape):
    # vllm-tt-plugin e3fc849 utils/dp_discovery.py _MESH_GRID_PRESETS and worker.py tg_mesh_grid=(8, 4).
    assert mesh_shape(value, available) == shape


@pytest.mark.parametrize(
    ("mesh_device", "available", "visible", "shape"),
    [
        ("T3K", 8, "0,1", (1, 2)),  # the listed devices win over a name covering more
        ("N300", 8, "2,3", (1, 2)),  # the name already covers them
        (None, 8, "0,1,2,3", (1, 4)),
        ("T3K", 8, "", (1, 8)),  # empty: ignored
        ("T3K", 8, None, (1, 8)),
    ],
)
def test_tt_visible_devices(mesh_device, available, visible, shape):
    # vllm-tt-plugin e3fc849 worker.py _resolve_mesh_grid.
    assert mesh_shape(mesh_device, available, visible) == shape


@pytest.mark.parametrize(
    ("cluster_type", "mesh_device", "shape", "fabric"),
    [
        ("BLACKHOLE_GALAXY", "BH-Galaxy", (8, 4), "FABRIC_2D_TORUS_XY"),
        ("GALAXY", "TG", (8, 4), "FABRIC_1D_RING"),
        ("T3K", "T3K", (1, 8), "FABRIC_1D"),
        ("P150_X8", "(2,4)", (2, 4), "FABRIC_1D"),
        (None, "BH-Galaxy", (8, 4), "FABRIC_2D_TORUS_XY"),  # no cluster type: by name
        (None, "TG", (8, 4), "FABRIC_1D_RING"),
        (None, "T3K", (1, 8), "FABRIC_1D"),
    ],
)
def test_default_fabric_by_cluster_type(cluster_type, mesh_device, shape, fabric):
    # vllm-tt-plugin e3fc849 worker.py get_fabric_config.
    assert default_fabric(cluster_type, mesh_device, shape) == fabric


@pytest.mark.parametrize(
    ("kv_heads", "devices", "per_device"),
    [(8, 1, 8), (8, 2, 4), (8, 8, 1), (4, 8, 1), (1, 32, 1), (32, 8, 4), (8, 4, 2)],
)
def test_kv_heads_per_device(kv_heads, devices, per_device):
    # vllm-tt-plugin e3fc849 model_runner.py _kv_cache_shape: heads // min(devices per submesh, heads).
    assert kv_heads_per_device(kv_heads, devices) == per_device
