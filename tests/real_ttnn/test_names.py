"""Every ttnn name, enum member and call our source uses, read from the source (tests/ttnn_names/used.py),
checked against the real ttnn 0.81.1 (tests/ttnn_names/live.py): names by ``getattr``, calls against
``inspect.signature`` or, where nanobind gives none, the signature in the first lines of the docstring.
A name or call added to the device layer is checked without touching this file. Only imports and
introspects ttnn: no cluster is touched in this process."""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

import pytest

from tests.real_ttnn.systems import NEEDS_TTNN, probe
from tests.ttnn_names.live import LiveNames, call_problems, check, doc_signature, signatures
from tests.ttnn_names.used import CallSite, Use, collect, option_uses
from tt_vllm_plugin import options

ttnn = pytest.importorskip("ttnn", reason=NEEDS_TTNN)

SRC = Path(__file__).resolve().parents[2] / "src"
OPTIONS_FILE = "src/tt_vllm_plugin/options.py"
# Calls our source writes with *args/**kwargs: checked as they run, in the probe (tests/real_ttnn/probe.py).
UNPACKED_CALLS = {"ttnn.open_mesh_device"}


@pytest.fixture(scope="module")
def names() -> LiveNames:
    return LiveNames(ttnn)


def test_every_ttnn_name_our_code_uses_exists(names):
    collected = collect(SRC)
    report = check(names, [*collected.uses, *option_uses(options, OPTIONS_FILE)], collected)
    assert not report.problems, "ttnn 0.81.1 lacks names our code uses:\n" + "\n".join(
        map(str, report.problems)
    )
    # The walk must see what device/ttnn.py is known to use; a broken walk must not pass on nothing.
    assert {
        "ttnn.open_mesh_device",
        "ttnn.close_mesh_device",
        "ttnn.set_fabric_config",
        "ttnn.FabricConfig.DISABLED",
        "ttnn.MeshDevice.get_submeshes",
        "ttnn.cluster.get_cluster_type",
        "ttnn.event_synchronize",
    } <= set(report.names)


def test_every_call_fits_the_real_signature(names):
    calls = collect(SRC).calls
    assert not list(call_problems(names, calls))
    called = {call.name for call in calls}
    assert {
        "ttnn.set_fabric_config",
        "ttnn.event_synchronize",
        "ttnn.open_mesh_device",
        "ttnn.MeshShape",
        "ttnn.DispatchCoreConfig",
        "ttnn.MeshDevice.quiesce_devices",
    } <= called
    # A new call with *args/**kwargs must be added to the probe's run-time check, not pass unchecked.
    assert {call.name for call in calls if call.unpacked} == UNPACKED_CALLS


def test_calls_with_unpacked_arguments_fit_the_real_signature_as_they_run():
    """The probe wraps each real function our source calls with *args/**kwargs and checks the arguments
    as they are passed (every device option set, so every keyword our plan can produce)."""
    calls = [*probe("T3K", "open")["calls"], *probe("T3K", "open with every device option")["calls"]]
    assert {call["name"] for call in calls} == UNPACKED_CALLS
    assert [call["problem"] for call in calls] == [None, None]
    assert [call["keywords"] for call in calls] == [
        ["mesh_shape", "trace_region_size"],
        ["dispatch_core_config", "l1_small_size", "mesh_shape", "trace_region_size", "worker_l1_size"],
    ]


def test_signatures_are_read_from_nanobind_docstrings():
    """What nanobind gives instead of a Python signature, read as a signature (defaults kept as text)."""
    for function in (ttnn.set_fabric_config, ttnn.event_synchronize, ttnn.record_event, ttnn.MeshShape):
        with pytest.raises(ValueError):
            inspect.signature(function)
    assert [str(s) for s in signatures(ttnn.event_synchronize)] == ["(mesh_event)"]
    assert [str(s) for s in signatures(ttnn.MeshShape)] == ["(s0, s1)", "(s0, s1, s2)", "(shape)"]
    assert [str(s) for s in signatures(ttnn.MeshDevice.quiesce_devices)] == ["()"]  # self is the mesh
    (fabric,) = signatures(ttnn.set_fabric_config)
    assert list(fabric.parameters) == [
        "config", "reliability_mode", "num_planes", "fabric_tensix_config", "fabric_udm_mode",
        "fabric_manager_mode", "router_config",
    ]  # fmt: skip
    assert fabric.parameters["reliability_mode"].default == "FabricReliabilityMode.STRICT_INIT"
    (record,) = signatures(ttnn.record_event)
    assert str(record) == "(mesh_device, cq_id='None', sub_device_ids='[]', device_range='None')"
    assert doc_signature(
        "f(a: dict[str, int] = {'x': 1}, /, b=2, *, c: Callable[[int], int] = g) -> None", "f"
    )
    assert doc_signature("other(a)", "f") is None


def test_a_call_that_does_not_fit_is_reported_exactly(names):
    where = "device/ttnn.py:1"
    bad = [
        CallSite("ttnn.set_fabric_config", where, 0, ("reliability_mode",), False),
        CallSite("ttnn.event_synchronize", where, 2, (), False),
        CallSite("ttnn.MeshShape", where, 4, (), False),
        CallSite("ttnn.DispatchCoreConfig", where, 0, ("axes",), False),
    ]
    assert list(call_problems(names, bad)) == [
        "ttnn.set_fabric_config does not take these arguments: (config, "
        "reliability_mode='FabricReliabilityMode.STRICT_INIT', num_planes='None', "
        "fabric_tensix_config='FabricTensixConfig.DISABLED', fabric_udm_mode='FabricUDMMode.DISABLED', "
        "fabric_manager_mode='FabricManagerMode.DEFAULT', router_config="
        f"{signatures(ttnn.set_fabric_config)[0].parameters['router_config'].default!r}): missing a required "
        "argument: 'config' [device/ttnn.py:1]",
        "ttnn.event_synchronize does not take these arguments: (mesh_event): too many positional arguments "
        "[device/ttnn.py:1]",
        "ttnn.MeshShape does not take these arguments: (s0, s1): too many positional arguments | "
        "(s0, s1, s2): too many positional arguments | (shape): too many positional arguments "
        "[device/ttnn.py:1]",
        "ttnn.DispatchCoreConfig does not take these arguments: "
        "(type: Optional[ttnn._ttnn.device.DispatchCoreType] = None, "
        "axis: Optional[ttnn._ttnn.device.DispatchCoreAxis] = None, fabric_tensix_config=None): "
        "got an unexpected keyword argument 'axes' [device/ttnn.py:1]",
    ]


def test_option_tables_are_the_real_enum_members(names):
    for option, (enum, values) in options.TTNN_ENUM_OPTIONS.items():
        members = names.enum_members(f"ttnn.{enum}")
        unsupported = names.documented_unsupported(f"ttnn.{enum}")
        assert [value.upper() for value in values] == [m for m in members if m not in unsupported], option
    # What ttnn 0.81.1 says, so a change in how it is read cannot quietly change the tables' meaning.
    assert names.enum_members("ttnn.FabricConfig") == list(options.KNOWN_FABRIC_CONFIGS)
    assert names.enum_members("ttnn.FabricReliabilityMode") == [
        "STRICT_INIT",
        "RELAXED_INIT",
        "DYNAMIC_RECONFIG",
    ]
    assert names.documented_unsupported("ttnn.FabricReliabilityMode") == ["DYNAMIC_RECONFIG"]
    assert names.enum_members("ttnn.DispatchCoreAxis") == ["ROW", "COL"]


def test_a_misspelt_name_is_reported_exactly(names, tmp_path):
    where = "device/ttnn.py:1"
    bad = [
        Use("ttnn.cluster.get_clustr_type", where, "attribute"),
        Use("ttnn.MeshDevice.quiesce_device", where, "mesh device attribute"),
        Use("ttnn.FabricConfig.FABRIC_2D_DYNAMIC", where, "allowed value of fabric_config"),
        Use("ttnn.get_num_device", where, "getattr with a constant"),
    ]
    report = check(names, [Use("ttnn.cluster.get_cluster_type", where, "attribute"), *bad])
    assert [str(problem) for problem in report.problems] == [
        "ttnn.cluster.get_clustr_type  [device/ttnn.py:1, attribute]: 'get_clustr_type' is not defined on "
        "ttnn.cluster (module ttnn._ttnn.cluster); close: get_cluster_type",
        "ttnn.MeshDevice.quiesce_device  [device/ttnn.py:1, mesh device attribute]: 'quiesce_device' is not "
        "defined on ttnn.MeshDevice (class ttnn._ttnn.multi_device); close: quiesce_devices",
        "ttnn.FabricConfig.FABRIC_2D_DYNAMIC  [device/ttnn.py:1, allowed value of fabric_config]: "
        "'FABRIC_2D_DYNAMIC' is not defined on ttnn.FabricConfig (enum ttnn._ttnn.fabric); "
        "close: FABRIC_2D, FABRIC_2D_TORUS_Y",
        "ttnn.get_num_device  [device/ttnn.py:1, getattr with a constant]: 'get_num_device' is not defined "
        "on ttnn (module ttnn); close: get_num_devices, get_num_pcie_devices",
    ]
    # The same through the source walk: a package whose device layer misspells a call and constants.
    package = tmp_path / "src" / "pkg"
    (package / "device").mkdir(parents=True)
    for name, text in {
        "__init__.py": "",
        "device/__init__.py": "",
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
    }.items():
        (package / name).write_text(textwrap.dedent(text).lstrip("\n"))
    collected = collect(tmp_path / "src", "pkg")
    assert [str(problem) for problem in check(names, collected.uses, collected).problems] == [
        "ttnn.cluster.get_clustr_type  [src/pkg/device/ttnn.py:7, attribute]: 'get_clustr_type' is not "
        "defined on ttnn.cluster (module ttnn._ttnn.cluster); close: get_cluster_type",
        "ttnn.FabricConfig.FABRIC_1D_RNG  [src/pkg/device/mesh.py:2, string constant close to "
        "ttnn.FabricConfig members]: 'FABRIC_1D_RNG' is not defined on ttnn.FabricConfig (enum); "
        "close: FABRIC_1D_RING, FABRIC_1D",
        # ClusterType comes with ttnn.cluster, the submodule get_cluster_type is in.
        "ttnn.cluster.ClusterType.BLACKHOLE_GALAXI  [src/pkg/device/mesh.py:3, string constant close to "
        "ttnn.cluster.ClusterType members]: 'BLACKHOLE_GALAXI' is not defined on ttnn.cluster.ClusterType "
        "(enum); close: BLACKHOLE_GALAXY",
    ]
