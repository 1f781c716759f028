"""Opening a mesh the real ttnn cannot open (here: no kernel compiler, sfpi) ends in our TTNNDeviceError,
one line naming the mesh, what was asked and ttnn's own message, with ttnn's exception (and its C++
backtrace) chained to it; fabric, set before the open on multi-device meshes, is DISABLED again after,
as ttnn itself reports it (``ttnn.get_fabric_config()``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.real_ttnn.systems import NEEDS_TTNN, SYSTEMS, probe

ttnn = pytest.importorskip("ttnn", reason=NEEDS_TTNN)

SFPI = (Path(ttnn.__file__).parent / "runtime" / "sfpi", Path("/opt/tenstorrent/sfpi"))
pytestmark = pytest.mark.skipif(
    any(path.exists() for path in SFPI),
    reason="a kernel compiler (sfpi) is installed here: these tests rely on ttnn failing for want of it",
)
SFPI_ERROR = (
    f"sfpi not found at {SFPI[0]} or {SFPI[1]} (TT_THROW @ /project/tt_metal/jit_build/build.cpp:291)"
)
EVERY_PARAMETER = (
    "{'trace_region_size': 20000000, 'worker_l1_size': 1345000, 'l1_small_size': 24576, "
    "'dispatch_core_axis': 'COL'}"
)


@pytest.mark.parametrize("name", SYSTEMS)
@pytest.mark.parametrize(
    ("phase", "parameters"),
    [("open", "{'trace_region_size': 50000000}"), ("open with every device option", EVERY_PARAMETER)],
)
def test_a_mesh_that_cannot_open_ends_in_our_error_with_fabric_reset(name, phase, parameters):
    system, outcome = SYSTEMS[name], probe(name, phase)
    rows, cols = system.mesh
    assert outcome["error"] == (
        f"Could not open the {rows}x{cols} Tenstorrent mesh (MESH_DEVICE={system.mesh_device!r}, "
        f"parameters {parameters}): RuntimeError: {system.open_refusal or SFPI_ERROR}"
    )
    # ttnn's own exception stays chained, backtrace and all.
    assert outcome["cause"] == "RuntimeError" and "\nbacktrace:\n" in outcome["cause_text"]
    # ttnn's fabric state before, while open_mesh_device ran (the default fabric on multi-device meshes),
    # and after.
    assert outcome["fabric_before"] == "DISABLED"
    assert [call["fabric_at_call"] for call in outcome["calls"]] == [system.fabric or "DISABLED"]
    assert outcome["fabric_after"] == "DISABLED"


@pytest.mark.parametrize("name", SYSTEMS)
def test_ttnn_writes_only_into_the_folder_it_runs_in(name):
    """Why every probe runs in a temporary folder: ttnn writes generated/ into the working directory."""
    written = probe(name, "open")["files_written"]
    assert all(path.startswith("generated/") for path in written), written
