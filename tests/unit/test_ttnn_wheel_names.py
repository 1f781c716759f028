"""Every ``ttnn`` name our code uses exists in the real ttnn 0.81.1 wheel, checked mechanically.

ttnn cannot be installed here (its wheels are cp310/cp312, this is 3.11) and needs a card, so the wheel
is read as a file: ``ttnn-0.81.1-cp312-cp312-manylinux_2_34_x86_64.whl`` (about 100 MB) is downloaded
once with pip into ``$TT_VLLM_CACHE/wheels`` (default ``~/.cache/tt-vllm-plugin/wheels``), outside the
repository, pinned by sha256, opened with zipfile and never installed. What the wheel defines is read from
its Python modules (AST) and from the nanobind bindings compiled into ``ttnn/_ttnn*.so``
(tests/ttnn_names/native.py); what our code uses is collected from ``src/tt_vllm_plugin`` by an AST walk
(tests/ttnn_names/used.py says exactly which forms count), so a name added to device/ttnn.py or
device/mesh.py is checked without touching this file.

``python -m tests.ttnn_names`` prints every checked name and where the wheel defines it.

Without network access to PyPI the download fails and so does this test, with pip's message: CI has PyPI
and must run it. Offline developers may skip it explicitly with ``TT_VLLM_SKIP_TTNN_WHEEL=1`` (refused
when ``CI=true``). The test that checks the source walk itself needs no wheel and always runs.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import get_type_hints

import pytest

from tests.ttnn_names.used import Use, allowed, check, collect, option_uses
from tests.ttnn_names.wheel import TTNN_VERSION, WheelNames, WheelUnavailable, fetch_wheel, wheel_cache_dir
from tt_vllm_plugin import options

OPT_OUT_ENV = "TT_VLLM_SKIP_TTNN_WHEEL"
SRC = Path(__file__).resolve().parents[2] / "src"
OPTIONS_FILE = "src/tt_vllm_plugin/options.py"


@pytest.fixture(scope="module")
def wheel() -> WheelNames:
    if os.environ.get(OPT_OUT_ENV) == "1":
        if os.environ.get("CI") == "true":  # CI has PyPI: the opt-out would only hide a broken check
            pytest.fail(f"{OPT_OUT_ENV}=1 is for offline developers; CI runs this check.", pytrace=False)
        pytest.skip(f"{OPT_OUT_ENV}=1: the ttnn {TTNN_VERSION} wheel check is skipped (never in CI)")
    try:
        return WheelNames(fetch_wheel())
    except WheelUnavailable as error:
        problem = str(error)  # failed outside the handler, so pytest shows pip's output once
    pytest.fail(
        f"Could not get the ttnn {TTNN_VERSION} wheel into {wheel_cache_dir()}: {problem}\n"
        f"This check needs PyPI once (CI has it). Offline, set {OPT_OUT_ENV}=1 to skip it.",
        pytrace=False,
    )


def test_every_ttnn_name_our_code_uses_is_in_the_wheel(wheel: WheelNames) -> None:
    collected = collect(SRC)
    report = check(wheel, [*collected.uses, *option_uses(options, OPTIONS_FILE)], collected)
    assert not report.problems, f"ttnn {TTNN_VERSION} lacks names our code uses:\n" + "\n".join(
        map(str, report.problems)
    )
    # The walk must see what device/ttnn.py is known to call; a broken walk must not pass on nothing.
    assert {
        "ttnn.open_mesh_device",
        "ttnn.close_mesh_device",
        "ttnn.set_fabric_config",
        "ttnn.FabricConfig.DISABLED",
        "ttnn.MeshDevice.get_submeshes",
    } <= set(report.names)


def test_option_tables_are_exactly_the_wheels_enum_members(wheel: WheelNames) -> None:
    hints = get_type_hints(options.TTOptions)
    for option, enum in options.TTNN_ENUM_OPTIONS.items():
        members = wheel.enum_members(f"ttnn.{enum}")
        assert members is not None, f"ttnn.{enum} is not an enum in the wheel"
        unsupported = wheel.documented_unsupported(f"ttnn.{enum}")
        values = [value.upper() for value in allowed(hints[option])]
        assert values == [m for m in members if m not in unsupported], (option, members, unsupported)
    # What the wheel says, so a change in how it is read cannot quietly change the tables' meaning.
    assert wheel.enum_members("ttnn.FabricConfig") == [
        "DISABLED", "FABRIC_1D", "FABRIC_1D_RING", "FABRIC_1D_NEIGHBOR_EXCHANGE", "FABRIC_2D",
        "FABRIC_2D_TORUS_XY", "FABRIC_2D_TORUS_X", "FABRIC_2D_TORUS_Y", "CUSTOM",
    ]  # fmt: skip
    assert wheel.enum_members("ttnn.FabricReliabilityMode") == [
        "STRICT_INIT",
        "RELAXED_INIT",
        "DYNAMIC_RECONFIG",
    ]
    assert wheel.documented_unsupported("ttnn.FabricReliabilityMode") == ["DYNAMIC_RECONFIG"]
    assert wheel.enum_members("ttnn.DispatchCoreAxis") == ["ROW", "COL"]


def test_names_are_attributed_to_their_module_and_class(wheel: WheelNames) -> None:
    """Where a name is defined, not only that the binary holds the string somewhere."""
    native = wheel.extensions["ttnn._ttnn"]
    assert native.binder_module["_ZN4ttnn11distributed9py_moduleERN8nanobind7module_E"] == "multi_device"
    assert native.module_kind("cluster", "get_cluster_type") == "function"
    assert native.module_kind("fabric", "get_cluster_type") is None
    mesh_device = native.scope("multi_device", "MeshDevice")
    assert mesh_device is not None
    assert mesh_device.members["get_submeshes"] == mesh_device.members["quiesce_devices"] == "method"
    assert mesh_device.members["shape"] == "property"
    mesh_shape = native.scope("multi_device", "MeshShape")
    assert mesh_shape is not None and "get_submeshes" not in mesh_shape.members
    assert wheel.enum_members("ttnn.cluster.ClusterType")[-3:] == ["BLACKHOLE_GALAXY", "P300_X2", "CUSTOM"]
    # Through the Python re-exports: ttnn.MeshDevice is ttnn/distributed's alias of the native class.
    assert "ttnn/distributed/distributed.py: MeshDevice = " in wheel.resolve("ttnn.MeshDevice").where
    assert wheel.resolve("ttnn.MeshDevice.quiesce_devices").kind == "method"
    assert wheel.resolve("ttnn.DispatchCoreConfig.axis").kind == "property"  # via the Python subclass


def test_a_misspelt_name_is_reported_exactly(wheel: WheelNames, tmp_path: Path) -> None:
    where = "device/ttnn.py:1"
    good = [
        Use("ttnn.cluster.get_cluster_type", where, "attribute"),
        Use("ttnn.MeshDevice.quiesce_devices", where, "x"),
    ]
    bad = [
        Use("ttnn.cluster.get_clustr_type", where, "attribute"),
        Use("ttnn.MeshDevice.quiesce_device", where, "mesh device attribute"),
        Use("ttnn.FabricConfig.FABRIC_2D_DYNAMIC", where, "allowed value of fabric_config"),
        Use("ttnn.get_num_device", where, "getattr with a constant"),
    ]
    report = check(wheel, [*good, *bad])
    assert [problem.use for problem in report.problems] == bad
    assert [str(problem) for problem in report.problems] == [
        "ttnn.cluster.get_clustr_type  [device/ttnn.py:1, attribute]: 'get_clustr_type' is not defined on "
        "ttnn.cluster (native submodule ttnn._ttnn.cluster); close: get_cluster_type",
        "ttnn.MeshDevice.quiesce_device  [device/ttnn.py:1, mesh device attribute]: 'quiesce_device' is not "
        "defined on ttnn.MeshDevice (class in _ttnn.so); close: quiesce_devices",
        "ttnn.FabricConfig.FABRIC_2D_DYNAMIC  [device/ttnn.py:1, allowed value of fabric_config]: "
        "'FABRIC_2D_DYNAMIC' is not defined on ttnn.FabricConfig (enum in _ttnn.so); "
        "close: FABRIC_2D, FABRIC_2D_TORUS_Y",
        "ttnn.get_num_device  [device/ttnn.py:1, getattr with a constant]: 'get_num_device' is not defined "
        "on ttnn (module, ttnn/__init__.py); close: get_num_devices, get_num_pcie_devices",
    ]
    # The same through the source walk: a package whose device layer misspells a call and a constant.
    package = _write_package(
        tmp_path,
        {
            "device/ttnn.py": """
                from pkg.device.mesh import RING
                def _import_ttnn():
                    import ttnn
                    return ttnn
                def close(device):
                    tt = _import_ttnn()
                    tt.cluster.get_clustr_type()
                    cluster = tt.cluster.get_cluster_type().name
                    device.mesh.quiesce_devices()
                    tt.set_fabric_config(tt.FabricConfig[RING])
            """,
            "device/mesh.py": """
                RING = "FABRIC_1D_RING"
                DEFAULT = "FABRIC_1D_RNG"
                FABRIC_BY_CLUSTER = {"BLACKHOLE_GALAXI": "FABRIC_2D_TORUS_XY", "P150x4": RING}
            """,
        },
    )
    collected = collect(package, "pkg")
    report = check(wheel, collected.uses, collected)
    assert [str(problem) for problem in report.problems] == [
        "ttnn.cluster.get_clustr_type  [src/pkg/device/ttnn.py:7, attribute]: 'get_clustr_type' is not "
        "defined on ttnn.cluster (native submodule ttnn._ttnn.cluster); close: get_cluster_type",
        "ttnn.FabricConfig.FABRIC_1D_RNG  [src/pkg/device/mesh.py:2, string constant close to "
        "ttnn.FabricConfig members]: 'FABRIC_1D_RNG' is not defined on ttnn.FabricConfig (enum); "
        "close: FABRIC_1D_RING, FABRIC_1D",
        # ClusterType comes with ttnn.cluster, the native submodule get_cluster_type is bound in.
        "ttnn._ttnn.cluster.ClusterType.BLACKHOLE_GALAXI  [src/pkg/device/mesh.py:3, string constant "
        "close to ttnn._ttnn.cluster.ClusterType members]: 'BLACKHOLE_GALAXI' is not defined on "
        "ttnn._ttnn.cluster.ClusterType (enum); close: BLACKHOLE_GALAXY",
    ]


def test_the_walk_finds_every_form_of_use(tmp_path: Path) -> None:
    """What counts as a use (tests/ttnn_names/used.py), without the wheel."""
    package = _write_package(
        tmp_path,
        {
            "options.py": "",
            "device/ttnn.py": """
                import ttnn as tn
                from pkg.device.mesh import NO_FABRIC
                def _import_ttnn():
                    import ttnn
                    return ttnn
                def count(ttnn):
                    return getattr(ttnn, "get_num_devices", None) or ttnn.GetNumAvailableDevices()
                def open_():
                    handle = _import_ttnn()
                    opened = handle.open_mesh_device(mesh_shape=handle.MeshShape(1, 2))
                    opened.enable_program_cache()
                    for part in opened.get_submeshes():
                        part.quiesce_devices()
                    if hasattr(device.mesh, "quiesce_devices"):
                        pass
                    tn.cluster.ClusterType.GALAXY.name
                    _member(handle.FabricConfig, NO_FABRIC, "fabric_config")
                    handle.FabricReliabilityMode.__members__["STRICT_INIT"]
                    mesh_device.dtype  # our contract's device object: not a ttnn.MeshDevice
            """,
            "device/mesh.py": 'NO_FABRIC = "DISABLED"\n',
            "worker.py": """
                from pkg.device import ttnn
                ttnn.open_ttnn_device()  # our own module called ttnn: not a use
            """,
        },
    )
    collected = collect(package, "pkg")
    assert sorted((u.name, u.where.rpartition(":")[2]) for u in collected.uses) == [
        ("ttnn.FabricConfig", "17"),
        ("ttnn.FabricReliabilityMode.__members__", "18"),
        ("ttnn.GetNumAvailableDevices", "7"),
        ("ttnn.MeshDevice.enable_program_cache", "11"),
        ("ttnn.MeshDevice.get_submeshes", "12"),
        ("ttnn.MeshDevice.quiesce_devices", "13"),
        ("ttnn.MeshDevice.quiesce_devices", "14"),
        ("ttnn.MeshShape", "10"),
        ("ttnn.cluster.ClusterType.GALAXY.name", "16"),
        ("ttnn.get_num_devices", "7"),
        ("ttnn.open_mesh_device", "10"),
    ]
    assert sorted((c.chain, c.member) for c in collected.candidates) == [
        ("ttnn.FabricConfig", "DISABLED"),
        ("ttnn.FabricReliabilityMode", "STRICT_INIT"),
    ]


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in {"__init__.py": "", "device/__init__.py": "", **files}.items():
        path = root / "src" / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root / "src"
