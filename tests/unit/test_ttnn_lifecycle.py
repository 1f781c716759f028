"""Opening and closing the mesh (device/ttnn.py and the worker), against a STAND-IN ``ttnn`` module.

The stand-in below is a fake module object injected as ``sys.modules["ttnn"]`` in this file only. It
records calls and can be told to fail; it checks the ORDER of our calls and our error handling (fabric
before the mesh, submeshes before the mesh, fabric reset last, nothing left set when opening fails,
clear messages). What the real ttnn 0.81.1 does short of an open mesh is checked in tests/real_ttnn (in
.venv-ttnn); what a card does is untested here.
"""

from __future__ import annotations

import enum
import pathlib
import re
import sys
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from tt_vllm_plugin.activation import DeviceChoice
from tt_vllm_plugin.device import ttnn as ttnn_device
from tt_vllm_plugin.device.mesh import MeshConfigError
from tt_vllm_plugin.device.ttnn import TTNNDeviceError, close_ttnn_device, describe_error, open_ttnn_device
from tt_vllm_plugin.options import TTOptions


class StandInMesh:
    def __init__(self, name: str, submeshes: list[StandInMesh] | None = None) -> None:
        self.name = name
        self.submeshes = submeshes or []

    def get_submeshes(self) -> list[StandInMesh]:
        return self.submeshes

    def __repr__(self) -> str:
        return self.name


class StandInTTNN(ModuleType):
    """STAND-IN for ttnn (not ttnn): the names our code calls, recording every call."""

    def __init__(self, num_devices: int, fabric_names=("DISABLED", "FABRIC_1D", "FABRIC_1D_RING")) -> None:
        super().__init__("ttnn")
        self.calls: list[tuple[Any, ...]] = []
        self.num_devices = num_devices
        self.fail: dict[str, Exception] = {}  # call name -> exception to raise
        self.mesh = StandInMesh("mesh", [StandInMesh("submesh0"), StandInMesh("submesh1")])
        self.FabricConfig = enum.Enum("FabricConfig", list(fabric_names))
        self.FabricReliabilityMode = enum.Enum("FabricReliabilityMode", ["STRICT_INIT", "RELAXED_INIT"])
        self.DispatchCoreAxis = enum.Enum("DispatchCoreAxis", ["ROW", "COL"])

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, *args))
        if name in self.fail:
            raise self.fail[name]

    def get_num_devices(self) -> int:
        self._record("get_num_devices")
        return self.num_devices

    def MeshShape(self, rows: int, cols: int) -> tuple[int, int]:  # noqa: N802 (ttnn's name)
        return (rows, cols)

    def DispatchCoreConfig(self, axis: Any) -> tuple[str, Any]:  # noqa: N802 (ttnn's name)
        return ("DispatchCoreConfig", axis.name)

    def set_fabric_config(self, config: Any, reliability_mode: Any = None) -> None:
        self._record("set_fabric_config", config.name, reliability_mode.name if reliability_mode else None)

    def open_mesh_device(self, mesh_shape: tuple[int, int], **kwargs: Any) -> StandInMesh:
        self._record("open_mesh_device", mesh_shape, kwargs)
        return self.mesh

    def close_mesh_device(self, mesh: StandInMesh) -> None:
        self._record("close_mesh_device", mesh.name)

    def event_synchronize(self, event: Any) -> None:
        self._record("event_synchronize", event)


@pytest.fixture
def stand_in(monkeypatch) -> StandInTTNN:
    fake = StandInTTNN(num_devices=8)
    monkeypatch.setitem(sys.modules, "ttnn", fake)
    return fake


def opts(**values) -> TTOptions:
    return TTOptions.from_mapping(values, "test")


def test_multi_device_open_and_close_order(stand_in):
    device = open_ttnn_device(opts(dispatch_core_axis="col", fabric_reliability_mode="RELAXED_INIT"), "T3K")
    assert stand_in.calls == [
        ("get_num_devices",),
        ("set_fabric_config", "FABRIC_1D", "RELAXED_INIT"),
        (
            "open_mesh_device",
            (1, 8),
            {"trace_region_size": 50_000_000, "dispatch_core_config": ("DispatchCoreConfig", "COL")},
        ),
    ]
    assert device.mesh is stand_in.mesh and device.num_devices == 8
    assert device.name == "ttnn (1x8 mesh, 8 device(s), FABRIC_1D)"

    stand_in.calls.clear()
    close_ttnn_device(device)
    close_ttnn_device(device)  # a second close does nothing
    assert stand_in.calls == [
        ("close_mesh_device", "submesh0"),
        ("close_mesh_device", "submesh1"),
        ("close_mesh_device", "mesh"),
        ("set_fabric_config", "DISABLED", None),
    ]


def test_single_device_sets_no_fabric_and_mesh_device_unset_takes_every_device(stand_in, monkeypatch):
    stand_in.num_devices = 1
    stand_in.mesh.submeshes = []
    monkeypatch.delenv("MESH_DEVICE", raising=False)
    device = open_ttnn_device(opts(trace_mode="none", fabric_config="FABRIC_1D_RING"))
    close_ttnn_device(device)
    assert stand_in.calls == [
        ("get_num_devices",),
        ("open_mesh_device", (1, 1), {}),
        ("close_mesh_device", "mesh"),
    ]


def test_failed_open_resets_fabric_and_says_what_was_tried(stand_in):
    stand_in.fail["open_mesh_device"] = RuntimeError("Timed out waiting for ethernet core")
    with pytest.raises(TTNNDeviceError) as error:
        open_ttnn_device(opts(), "(2,4)")
    assert str(error.value) == (
        "Could not open the 2x4 Tenstorrent mesh (MESH_DEVICE='(2,4)', parameters "
        "{'trace_region_size': 50000000}): RuntimeError: Timed out waiting for ethernet core"
    )
    assert isinstance(error.value.__cause__, RuntimeError)
    assert [call[0] for call in stand_in.calls] == [
        "get_num_devices",
        "set_fabric_config",
        "open_mesh_device",
        "set_fabric_config",
    ]
    assert stand_in.calls[-1] == ("set_fabric_config", "DISABLED", None)


def test_ttnn_errors_are_told_in_one_line_without_the_cpp_backtrace():
    # As ttnn 0.81.1 raises it without chips (tests/real_ttnn: the real one), its backtrace shortened.
    no_chips = RuntimeError(
        "TT_FATAL @ /project/tt_metal/llrt/tt_cluster.cpp:129: num_chips > 0\ninfo:\n"
        "No chips detected in the cluster\nbacktrace:\n"
        " --- tt::Cluster::generate_cluster_descriptor()\n"
        " --- tt::tt_metal::GetNumAvailableDevices()\n"
    )
    assert describe_error(no_chips) == (
        "RuntimeError: No chips detected in the cluster "
        "(TT_FATAL @ /project/tt_metal/llrt/tt_cluster.cpp:129)"
    )
    assert describe_error(ValueError("plain\nmessage\nbacktrace:\n --- frame")) == "ValueError: plain message"
    assert describe_error(ModuleNotFoundError("No module named 'ttnn'")) == (
        "ModuleNotFoundError: No module named 'ttnn'"
    )


def test_failed_fabric_set_up_opens_nothing(stand_in):
    stand_in.fail["set_fabric_config"] = RuntimeError("no ethernet links")
    with pytest.raises(TTNNDeviceError, match="RuntimeError: no ethernet links"):
        open_ttnn_device(opts(), "N300")
    assert [call[0] for call in stand_in.calls] == [
        "get_num_devices",
        "set_fabric_config",
        "set_fabric_config",
    ]
    assert stand_in.calls[-1] == ("set_fabric_config", "DISABLED", None)  # the reset is still tried


def test_a_fabric_the_installed_ttnn_lacks_fails_before_anything_is_set(stand_in):
    # Options checked where ttnn was not importable (tt-serve's environment) take ttnn 0.81.1's names;
    # here the installed ttnn lacks one of them. (Where it imports, TTOptions refuses it already.)
    options = TTOptions(fabric_config="FABRIC_2D", given=frozenset({"fabric_config"}))
    with pytest.raises(TTNNDeviceError) as error:
        open_ttnn_device(options, "T3K")
    assert str(error.value) == (
        "fabric_config 'FABRIC_2D' is not offered by the installed ttnn (it has: DISABLED, FABRIC_1D, "
        "FABRIC_1D_RING); pick one of those or upgrade tt-metal."
    )
    assert stand_in.calls == [("get_num_devices",)]


def test_a_bad_mesh_device_fails_before_anything_is_set(stand_in):
    with pytest.raises(MeshConfigError, match="MESH_DEVICE='TG' asks for a 8x4 mesh"):
        open_ttnn_device(opts(), "TG")
    assert stand_in.calls == [("get_num_devices",)]


def test_close_carries_on_after_a_failure_and_reports_it(stand_in):
    device = open_ttnn_device(opts(), "N300")
    stand_in.calls.clear()
    failing_close = stand_in.close_mesh_device

    def close(mesh):
        if mesh.name == "submesh0":
            stand_in.calls.append(("close_mesh_device", mesh.name))
            raise RuntimeError("device hung")
        failing_close(mesh)

    stand_in.close_mesh_device = close
    with pytest.raises(TTNNDeviceError) as error:
        close_ttnn_device(device)
    assert str(error.value) == (
        "Closing the Tenstorrent mesh failed: closing a data-parallel submesh: RuntimeError: device hung"
    )
    assert stand_in.calls == [
        ("close_mesh_device", "submesh0"),
        ("close_mesh_device", "submesh1"),
        ("close_mesh_device", "mesh"),
        ("set_fabric_config", "DISABLED", None),
    ]


# ---- the worker: opens through device/ttnn.py, closes on failure and on shutdown


def test_waiting_for_read_events_synchronizes_each_through_ttnn(stand_in):
    device = open_ttnn_device(opts(), mesh_device="N300")
    stand_in.calls.clear()
    device.wait_for_events(["read-event-0", "read-event-1"])
    device.wait_for_events([])
    assert stand_in.calls == [("event_synchronize", "read-event-0"), ("event_synchronize", "read-event-1")]


def _worker(options: TTOptions):
    from tt_vllm_plugin.worker.worker import TTWorker

    worker = TTWorker.__new__(TTWorker)  # skip WorkerBase set-up: only the device lifecycle is under test
    worker.options = options
    worker.vllm_config = SimpleNamespace()
    worker.model_runner = None
    return worker


@pytest.fixture
def on_ttnn(monkeypatch, stand_in):
    from tt_vllm_plugin.worker import worker as worker_module

    monkeypatch.setattr(worker_module, "resolve_device", lambda: DeviceChoice.TTNN)
    monkeypatch.setenv("MESH_DEVICE", "N300")
    return worker_module


def test_worker_closes_the_mesh_when_start_up_fails_after_opening(on_ttnn, stand_in, monkeypatch):
    def broken_runner(vllm_config, mesh_device, options):
        raise ValueError("runner could not start")

    monkeypatch.setattr(on_ttnn, "TTModelRunner", broken_runner)
    worker = _worker(opts())
    with pytest.raises(ValueError, match="runner could not start"):
        worker.init_device()
    assert [call[:2] for call in stand_in.calls][-4:] == [
        ("close_mesh_device", "submesh0"),
        ("close_mesh_device", "submesh1"),
        ("close_mesh_device", "mesh"),
        ("set_fabric_config", "DISABLED"),
    ]
    worker.shutdown()  # nothing left to close
    assert stand_in.calls[-1] == ("set_fabric_config", "DISABLED", None)


def test_worker_hands_the_mesh_to_the_runner_and_closes_it_once_on_shutdown(on_ttnn, stand_in, monkeypatch):
    runners = []

    class Runner:
        def __init__(self, vllm_config, mesh_device, options):
            self.mesh_device, self.kv_cache, self.tt_model = mesh_device, ["kv"], "model"
            runners.append(self)

    monkeypatch.setattr(on_ttnn, "TTModelRunner", Runner)
    worker = _worker(opts(trace_mode="none"))
    worker.init_device()
    (runner,) = runners
    assert runner.mesh_device.mesh is stand_in.mesh and runner.mesh_device.trace_mode == "none"
    assert not any(call[0] == "close_mesh_device" for call in stand_in.calls)

    worker.shutdown()
    worker.shutdown()
    closes = [call for call in stand_in.calls if call[0] == "close_mesh_device"]
    assert closes == [("close_mesh_device", name) for name in ("submesh0", "submesh1", "mesh")]
    assert runner.kv_cache == [] and runner.tt_model is None


def test_ttnn_device_module_is_the_only_one_importing_ttnn():
    src = pathlib.Path(ttnn_device.__file__).parents[1]
    imports_ttnn = re.compile(r"^\s*(import ttnn\b|from ttnn\b)", re.MULTILINE)
    importers = sorted(
        str(p.relative_to(src)) for p in src.rglob("*.py") if imports_ttnn.search(p.read_text())
    )
    assert importers == ["device/ttnn.py"]


def _with_cluster(stand_in: StandInTTNN, cluster_type: str) -> None:
    """ttnn.cluster.get_cluster_type() answering ``cluster_type`` (a ttnn.cluster.ClusterType name)."""

    def get_cluster_type() -> SimpleNamespace:
        stand_in._record("get_cluster_type")
        return SimpleNamespace(name=cluster_type)

    stand_in.cluster = SimpleNamespace(get_cluster_type=get_cluster_type)


@pytest.mark.parametrize(
    ("cluster_type", "mesh_device", "count", "fabric"),
    [
        ("BLACKHOLE_GALAXY", "BH-Galaxy", 32, "FABRIC_2D_TORUS_XY"),
        ("GALAXY", "TG", 32, "FABRIC_1D_RING"),
        ("T3K", "T3K", 8, "FABRIC_1D"),
        ("GALAXY", "T3K", 8, "FABRIC_1D_RING"),  # the cluster decides, not the mesh's size (Tenstorrent's)
    ],
)
def test_fabric_default_comes_from_the_cluster_type(stand_in, cluster_type, mesh_device, count, fabric):
    stand_in.num_devices = count
    stand_in.FabricConfig = enum.Enum(
        "FabricConfig", ["DISABLED", "FABRIC_1D", "FABRIC_1D_RING", "FABRIC_2D_TORUS_XY"]
    )
    _with_cluster(stand_in, cluster_type)
    open_ttnn_device(opts(), mesh_device)
    assert stand_in.calls[:3] == [
        ("get_num_devices",),
        ("get_cluster_type",),
        ("set_fabric_config", fabric, "STRICT_INIT"),
    ]


def test_cluster_type_is_not_asked_when_fabric_is_given_or_one_device(stand_in):
    _with_cluster(stand_in, "GALAXY")
    open_ttnn_device(opts(fabric_config="FABRIC_1D"), "T3K")
    stand_in.num_devices = 1
    open_ttnn_device(opts(), "N150")
    assert ("get_cluster_type",) not in stand_in.calls


def test_tt_visible_devices_narrows_the_mesh(stand_in, monkeypatch):
    monkeypatch.setenv("TT_VISIBLE_DEVICES", "4,5")
    device = open_ttnn_device(opts(), "T3K")  # names the whole system, this process sees two chips
    assert device.plan.shape == (1, 2)


def test_a_mesh_with_submeshes_is_quiesced_before_it_is_closed(stand_in):
    device = open_ttnn_device(opts(), "T3K")
    stand_in.mesh.quiesce_devices = lambda: stand_in._record("quiesce_devices")
    stand_in.calls.clear()
    close_ttnn_device(device)
    assert stand_in.calls == [
        (
            "quiesce_devices",
        ),  # MeshDevice.quiesce_devices: "Call before closing a mesh that has carved submeshes"
        ("close_mesh_device", "submesh0"),
        ("close_mesh_device", "submesh1"),
        ("close_mesh_device", "mesh"),
        ("set_fabric_config", "DISABLED", None),
    ]


def test_a_mesh_without_submeshes_is_not_quiesced(stand_in):
    stand_in.mesh.submeshes = []
    device = open_ttnn_device(opts(), "T3K")
    stand_in.mesh.quiesce_devices = lambda: stand_in._record("quiesce_devices")
    close_ttnn_device(device)
    assert ("quiesce_devices",) not in stand_in.calls
