"""No import cycle inside the package: every module can be imported on its own, in any order.

A cycle works only while the modules happen to be imported in one order (vLLM 0.25.1 importing
``tt_vllm_plugin.platform`` half-way through its own import showed how that breaks). The graph is read
from the source with ``ast``: every ``import`` of a package module counts, at module level or inside a
function (a deferred import is still a dependency, only a later one), except those under
``if TYPE_CHECKING:``, which never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "tt_vllm_plugin"
SOURCE = Path(__file__).resolve().parents[2] / "src" / PACKAGE


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(node: ast.AST, current: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = current.split(".")
            base = base[: len(base) - node.level + (1 if is_package else 0)]
            prefix = ".".join([*base, node.module] if node.module else base)
        else:
            prefix = node.module or ""
        # "from a.b import c" may import module a.b.c or name c of a.b: both are checked against modules.
        return [prefix, *(f"{prefix}.{alias.name}" for alias in node.names)]
    return []


def imports_of(path: Path, modules: set[str], current: str | None = None) -> set[str]:
    current = current or module_name(path)
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        for name in _imported(node, current, is_package):
            # The innermost package module the name lies in (a name imported from a module counts as it).
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != current and name != PACKAGE:
                found.add(name)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(SOURCE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component (Tarjan), shown as a path that closes on itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_path_through(graph, set(component)) for component in components]


def _path_through(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    start = min(component)
    path, seen = [start], {start}
    while True:
        options = sorted(n for n in graph[path[-1]] if n in component)
        back = [n for n in options if n == start]
        if back and len(path) > 1:
            return [*path, start]
        fresh = [n for n in options if n not in seen]
        if not fresh:
            return [*path, options[0]]
        path.append(fresh[0])
        seen.add(fresh[0])


def test_the_checker_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_reads_deferred_and_relative_imports_and_skips_type_checking(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import sibling\n"
        "from tt_vllm_plugin.b import name_in_b\n"
        "if TYPE_CHECKING:\n"
        "    from tt_vllm_plugin.typing_only import T\n"
        "def later():\n"
        "    import tt_vllm_plugin.deferred\n"
    )
    modules = {f"tt_vllm_plugin.{m}" for m in ("m", "sibling", "b", "typing_only", "deferred")}
    assert imports_of(source, modules, current="tt_vllm_plugin.m") == {
        "tt_vllm_plugin.sibling",
        "tt_vllm_plugin.b",
        "tt_vllm_plugin.deferred",
    }


def test_no_import_cycles_in_the_package():
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)
