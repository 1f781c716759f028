"""What the AST walk (tests/ttnn_names/used.py) counts as a use of ttnn, and how it reads calls, on a small
package written here: no ttnn needed. tests/real_ttnn/test_names.py checks what the walk finds in our source
against the real ttnn 0.81.1 (in .venv-ttnn)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.ttnn_names.used import CallSite, collect


def test_the_walk_finds_every_form_of_use(tmp_path: Path) -> None:
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
                    handle.set_fabric_config(config, reliability_mode=mode)
                    handle.open_mesh_device(mesh_shape=shape, **kwargs)
                    tn.event_synchronize(*events)
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
        ("ttnn.event_synchronize", "22"),
        ("ttnn.get_num_devices", "7"),
        ("ttnn.open_mesh_device", "10"),
        ("ttnn.open_mesh_device", "21"),
        ("ttnn.set_fabric_config", "20"),
    ]
    assert sorted((c.chain, c.member) for c in collected.candidates) == [
        ("ttnn.FabricConfig", "DISABLED"),
        ("ttnn.FabricReliabilityMode", "STRICT_INIT"),
    ]
    # Calls: how many positional arguments, which keywords, and whether */** hide them.
    where = "src/pkg/device/ttnn.py"
    assert sorted(collected.calls, key=lambda c: (int(c.where.rpartition(":")[2]), c.name)) == [
        CallSite("ttnn.GetNumAvailableDevices", f"{where}:7", 0, (), False),
        CallSite("ttnn.MeshShape", f"{where}:10", 2, (), False),
        CallSite("ttnn.open_mesh_device", f"{where}:10", 0, ("mesh_shape",), False),
        CallSite("ttnn.MeshDevice.enable_program_cache", f"{where}:11", 0, (), False),
        CallSite("ttnn.MeshDevice.get_submeshes", f"{where}:12", 0, (), False),
        CallSite("ttnn.MeshDevice.quiesce_devices", f"{where}:13", 0, (), False),
        CallSite("ttnn.set_fabric_config", f"{where}:20", 1, ("reliability_mode",), False),
        CallSite("ttnn.open_mesh_device", f"{where}:21", 0, ("mesh_shape",), True),
        CallSite("ttnn.event_synchronize", f"{where}:22", 0, (), True),
    ]


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in {"__init__.py": "", "device/__init__.py": "", **files}.items():
        path = root / "src" / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root / "src"
