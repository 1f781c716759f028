"""Each environment variable's name is spelled once, in ``tt_vllm_plugin.envs``."""

from __future__ import annotations

import ast
from pathlib import Path

from tt_vllm_plugin import envs

SOURCE = Path(__file__).resolve().parents[2] / "src" / "tt_vllm_plugin"


def spelled_names() -> list[tuple[str, int, str]]:
    """(file, line, name) of every string literal elsewhere in src/ that is exactly a registered name."""
    names = {var.name for var in envs.REGISTRY}
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        if path.name == "envs.py" and path.parent == SOURCE:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append((str(path.relative_to(SOURCE)), node.lineno, node.value))
    return found


def test_every_name_is_registered_once():
    names = [var.name for var in envs.REGISTRY]
    assert len(names) == len(set(names)) and "TT_VLLM_DEVICE" in names and "TT_SERVE_ADMIN_TOKEN" in names


def test_names_are_not_spelled_outside_the_registry():
    assert spelled_names() == []


def test_get_reads_stripped_values_with_defaults():
    assert envs.TT_VLLM_DEVICE.get({}) == "auto"
    assert envs.TT_VLLM_DEVICE.get({"TT_VLLM_DEVICE": "  host "}) == "host"
    assert envs.TT_VLLM_DEVICE.get({"TT_VLLM_DEVICE": " "}) == "auto"
    assert envs.MESH_DEVICE.get({}) == ""
