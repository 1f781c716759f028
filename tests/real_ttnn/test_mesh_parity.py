"""Our mesh and fabric decisions (device/mesh.py, through device/ttnn.py ``_plan`` and the real ttnn) give,
on each mocked system, what Tenstorrent's runner gives: the mesh for MESH_DEVICE unset, the system's name,
and TT_VISIBLE_DEVICES listing two chips; the default fabric from the REAL
``ttnn.cluster.get_cluster_type()``.

Tenstorrent's side is tenstorrent/vllm-tt-plugin e3fc84941bf7a1d0df32aae2c50d539259c925f0: ``worker.py``
``_resolve_mesh_grid`` and ``utils/dp_discovery.py`` ``parse_mesh_grid`` (MESH_DEVICE unset: one row of every
device; a preset name: its grid; TT_VISIBLE_DEVICES listing k chips another grid does not cover: (1, k)),
written down per system in tests/real_ttnn/systems.py; and ``worker.py`` ``get_fabric_config``, applied in the
probe to the same real cluster type (tests/real_ttnn/probe.py ``tenstorrent_fabric``)."""

from __future__ import annotations

import pytest

from tests.real_ttnn.systems import NEEDS_TTNN, SYSTEMS, probe

pytest.importorskip("ttnn", reason=NEEDS_TTNN)


def _fabric_for(system_fabric: str | None, shape: list[int]) -> str | None:
    return None if shape[0] * shape[1] == 1 else system_fabric


@pytest.mark.parametrize("name", SYSTEMS)
def test_mesh_and_fabric_are_tenstorrents(name):
    system, plans = SYSTEMS[name], probe(name)["plans"]
    n = len(system.device_ids)
    expected_shapes = {"unset": [1, n], "named": list(system.mesh)}
    if n >= 2:
        expected_shapes["visible 0,1"] = [1, 2]
    assert {case: plan["shape"] for case, plan in plans.items()} == expected_shapes
    for case, plan in plans.items():
        tenstorrent = _fabric_for(system.fabric, plan["shape"])
        assert plan["tenstorrent_fabric"] == tenstorrent, (
            case,
            "Tenstorrent's rule on the real cluster type",
        )
        assert plan["fabric"] == tenstorrent, case
        assert plan["reliability_mode"] == ("STRICT_INIT" if tenstorrent else None), case


def test_the_systems_cover_every_fabric_default():
    """Each branch of Tenstorrent's get_fabric_config is reached by a real cluster type."""
    assert {system.fabric for system in SYSTEMS.values()} == {
        None,
        "FABRIC_1D",
        "FABRIC_1D_RING",
        "FABRIC_2D_TORUS_XY",
    }
