"""tt-serve is a distribution of its own: no import cycle inside it, and it imports nothing of the plugin
(the plugin lives in other Python environments, reached only through their interpreters); the plugin
imports nothing of tt-serve."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_import_cycles import cycles, imports_of

ROOT = Path(__file__).resolve().parents[2]
SERVE = ROOT / "tt-serve" / "src" / "tt_serve"
PLUGIN = ROOT / "src" / "tt_vllm_plugin"


def _module_name(path: Path, source: Path) -> str:
    parts = path.relative_to(source.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph(source: Path, also: set[str] = frozenset()) -> dict[str, set[str]]:
    paths = sorted(source.rglob("*.py"))
    modules = {_module_name(p, source) for p in paths} | set(also)
    return {_module_name(p, source): imports_of(p, modules, _module_name(p, source)) for p in paths}


def test_no_import_cycles_in_tt_serve():
    found = cycles(_graph(SERVE))
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_the_plugin_imports_nothing_of_tt_serve():
    graph = _graph(PLUGIN, also={"tt_serve"})
    assert {m: sorted(d) for m, d in graph.items() if "tt_serve" in d} == {}


def test_tt_serve_imports_nothing_of_the_plugin():
    """Not even lazily: the plugin is in other environments, reached through their interpreters (probe.py
    runs there and names the plugin's modules only as strings)."""
    graph = _graph(SERVE, also={"tt_vllm_plugin"})
    assert {m: sorted(d) for m, d in graph.items() if "tt_vllm_plugin" in d} == {}


def test_the_probe_imports_only_the_standard_library():
    """probe.py runs inside every backend's environment (any Python from 3.10): nothing but the stdlib."""
    import ast
    import sys

    tree = ast.parse((SERVE / "probe.py").read_text())
    modules = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert modules - {"__future__"} <= set(sys.stdlib_module_names), modules
