"""Each environment variable's name is spelled once per package: in ``tt_vllm_plugin.envs`` for the
plugin, in ``tt_serve.envs`` for tt-serve; the names both use must agree (tests/test_shared_protocol.py)."""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType

import pytest

from tt_serve import envs as serve_envs
from tt_vllm_plugin import envs

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [
    (envs, ROOT / "src" / "tt_vllm_plugin"),
    (serve_envs, ROOT / "tt-serve" / "src" / "tt_serve"),
]


def spelled_names(registry: ModuleType, source: Path) -> list[tuple[str, int, str]]:
    """(file, line, name) of each string literal elsewhere in the package equal to a registered name."""
    names = {var.name for var in registry.REGISTRY}
    found = []
    for path in sorted(source.rglob("*.py")):
        if path.name == "envs.py" and path.parent == source:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append((str(path.relative_to(source)), node.lineno, node.value))
    return found


def test_every_name_is_registered_once():
    names = [var.name for var in envs.REGISTRY]
    assert len(names) == len(set(names)) and "TT_VLLM_DEVICE" in names
    served = [var.name for var in serve_envs.REGISTRY]
    assert len(served) == len(set(served)) and "TT_SERVE_ADMIN_TOKEN" in served


@pytest.mark.parametrize(("registry", "source"), PACKAGES, ids=["tt_vllm_plugin", "tt_serve"])
def test_names_are_not_spelled_outside_the_registry(registry: ModuleType, source: Path):
    assert spelled_names(registry, source) == []


def test_get_reads_stripped_values_with_defaults():
    assert envs.TT_VLLM_DEVICE.get({}) == "auto"
    assert envs.TT_VLLM_DEVICE.get({"TT_VLLM_DEVICE": "  host "}) == "host"
    assert envs.TT_VLLM_DEVICE.get({"TT_VLLM_DEVICE": " "}) == "auto"
    assert envs.MESH_DEVICE.get({}) == ""
