"""The systems tests/real_ttnn mock with tt-umd's cluster descriptors, what the real ttnn 0.81.1 reports
for each, and what Tenstorrent's runner decides for it; and running the probe (tests/real_ttnn/probe.py)
in a process of its own for one of them.

Processes of its own for each descriptor: ttnn reads ``TT_METAL_MOCK_CLUSTER_DESC_PATH`` once per process,
when it first touches the cluster (measured: after a first query with the N300 descriptor, pointing the
variable at the T3K one still gives N300's [0, 1]). And one process per open attempt (probe.py ``OPENS``).
Each process runs in an empty temporary folder with ``HOME`` and ``TT_METAL_CACHE`` there too: ttnn writes
``generated/`` into the working directory and caches under ``~/.cache``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DESCRIPTORS_DIR = REPO / "tests" / "fixtures" / "cluster_descriptors"
MOCK_ENV = "TT_METAL_MOCK_CLUSTER_DESC_PATH"
# Variables of ours and of tt-metal that would change what the probe sees; the probe sets what it needs.
CLEARED_ENV = (
    "TT_VLLM_DEVICE",
    "MESH_DEVICE",
    "TT_VISIBLE_DEVICES",
    MOCK_ENV,
    "VLLM_PLUGINS",
    "TT_METAL_HOME",
)
PROBE_TIMEOUT_S = 120
# Why tests/real_ttnn skip elsewhere (pytest.importorskip("ttnn", reason=NEEDS_TTNN)).
NEEDS_TTNN = (
    "needs the real ttnn (Python 3.12): `make test-ttnn` runs these in .venv-ttnn (built by `make ttnn-env`)"
)


@dataclass(frozen=True)
class System:
    """A system as a tt-umd cluster descriptor describes it. ``mesh`` and ``fabric`` are what Tenstorrent's
    runner (tenstorrent/vllm-tt-plugin e3fc84941bf7a1d0df32aae2c50d539259c925f0) decides for
    ``MESH_DEVICE=<mesh_device>`` and no ``fabric_config``: ``utils/dp_discovery.py`` ``_MESH_GRID_PRESETS``
    and ``parse_mesh_grid`` (TG and BH-Galaxy: ``_resolve_mesh_grid``'s ``tg_mesh_grid=(8, 4)``), and
    ``worker.py`` ``get_fabric_config`` (no fabric on one device; BLACKHOLE_GALAXY -> FABRIC_2D_TORUS_XY,
    GALAXY -> FABRIC_1D_RING, anything else FABRIC_1D)."""

    descriptor: str  # file in tests/fixtures/cluster_descriptors (tt-umd's name)
    mesh_device: str  # the MESH_DEVICE name of the system
    device_ids: tuple[int, ...]  # ttnn.get_device_ids()
    cluster_type: str  # ttnn.cluster.get_cluster_type().name
    mesh: tuple[int, int]
    fabric: str | None
    # Why ttnn 0.81.1 refuses to open the system's mesh here, when it is not the missing kernel compiler.
    open_refusal: str | None = None

    @property
    def path(self) -> Path:
        return DESCRIPTORS_DIR / self.descriptor


SYSTEMS: dict[str, System] = {
    "N150": System("wormhole_N150.yaml", "N150", (0,), "N150", (1, 1), None),
    "N300": System("wormhole_N300.yaml", "N300", (0, 1), "N300", (1, 2), "FABRIC_1D"),
    "T3K": System("t3k_cluster_desc.yaml", "T3K", tuple(range(8)), "T3K", (1, 8), "FABRIC_1D"),
    "P150": System("blackhole_P150.yaml", "P150", (0,), "P150", (1, 1), None),
    # From the wheel alone (no tt-metal checkout, so no physical grouping descriptor: ttnn logs "No
    # Physical Grouping Descriptor file found"), ttnn lays the 6U Galaxy out as a 32x1 system mesh and
    # refuses TG's 8x4.
    "TG": System(
        "6u_cluster_desc.yaml",
        "TG",
        tuple(range(32)),
        "GALAXY",
        (8, 4),
        "FABRIC_1D_RING",
        "Requested mesh is too big and is not rotatable: MeshShape([8, 4]) and SystemMesh "
        "MeshShape([32, 1]), offset MeshCoordinate([0, 0]) "
        "(TT_THROW @ /project/tt_metal/distributed/system_mesh.cpp:224)",
    ),
    "BH-Galaxy": System(
        "blackhole_galaxy.yaml",
        "BH-Galaxy",
        tuple(range(32)),
        "BLACKHOLE_GALAXY",
        (8, 4),
        "FABRIC_2D_TORUS_XY",
    ),
}


def probe_env(home: Path, system: System | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    env.update(
        HOME=str(home),
        TT_METAL_CACHE=str(home / "tt-metal-cache"),
        PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
    )
    if system is not None:
        env[MOCK_ENV] = str(system.path)
    return env


@cache
def probe(name: str | None, phase: str = "detect") -> dict[str, Any]:
    """What tests/real_ttnn/probe.py reports in ``phase`` for the system ``name`` (None: no descriptor, no
    chips), run once per test session in a process of its own. Also lists the files ttnn left in its
    folder."""
    system = SYSTEMS[name] if name is not None else None
    with tempfile.TemporaryDirectory(prefix="tt-real-ttnn-") as folder:
        home = Path(folder)
        work = home / "work"
        work.mkdir()
        out = home / "report.json"
        command = [sys.executable, "-m", "tests.real_ttnn.probe", name or "", phase, str(out)]
        done = subprocess.run(
            command,
            cwd=work,
            env=probe_env(home, system),
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
        )
        if done.returncode != 0 or not out.is_file():
            tail = "\n".join(done.stderr.strip().splitlines()[-30:])
            raise AssertionError(
                f"the {phase} probe for {name or 'no descriptor'} failed (exit {done.returncode}):\n{tail}"
            )
        report = json.loads(out.read_text())
        report["files_written"] = sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file())
        report["stderr"] = done.stderr
    return report
