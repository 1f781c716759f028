"""Which ``ttnn`` names our source uses, and how it calls them, collected mechanically (checked against the
real ttnn by tests/ttnn_names/live.py, in tests/real_ttnn).

From every module under ``src/tt_vllm_plugin`` (an AST walk, nothing imported but ``options``):

- attribute chains rooted at the ttnn module (``ttnn.cluster.get_cluster_type``): the module is any name
  bound by ``import ttnn [as x]``, any name ``ttnn`` (our convention for the module passed around, e.g.
  ``def _device_count(ttnn: ModuleType)``) unless the file binds ``ttnn`` to our own package's module, and
  any name assigned from a function of ours that imports and returns ttnn (``ttnn = _import_ttnn()``);
- ``getattr``/``hasattr`` on such a chain with a string constant (``getattr(ttnn, "ReadDeviceProfiler",
  None)``), the constant being a literal or a module-level string constant of our package;
- enum members given by constant: a call or subscript that takes a ttnn chain and an upper-case string
  constant (``_member(ttnn.FabricConfig, NO_FABRIC, ...)``, ``ttnn.FabricConfig[NAME]``), checked when the
  chain is an enum;
- the mesh device's members: attributes read from an expression that holds a ``ttnn.MeshDevice``, which
  is a name or attribute called ``mesh``, ``submesh`` or ``*_mesh`` / ``*_submesh`` (``device.mesh``), a
  name assigned from ``ttnn.open_mesh_device(...)`` or ``<mesh>.create_submesh(...)``, or a loop variable
  over ``<mesh>.get_submeshes()`` / ``create_submeshes(...)``;
- the option tables: every value an option of ``options.TTNN_ENUM_OPTIONS`` allows without ttnn names a
  member of its ttnn enum (``value.upper()``);
- calls: every call of a ttnn chain (``ttnn.set_fabric_config(config, mode)``, ``ttnn.MeshShape(1, 2)``) or of
  a mesh device's method, with how many positional arguments it passes and the names of its keyword
  arguments; a call with ``*args``/``**kwargs`` is marked: its arguments are known only when it runs;
- typos in string constants of the device layer (``device/*.py``, ``options.py``): an upper-case constant
  that is not a member of any ttnn enum our code uses (or of the native submodules it uses: calling
  ``ttnn.cluster.get_cluster_type`` brings ``ClusterType``) but nearly is (``FABRIC_1D_RNG``). Exact
  members pass unremarked: a constant is not known to be meant as a member.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

MESH_DEVICE_CLASS = "ttnn.MeshDevice"
_MESH_NAME = re.compile(r"(?:^|_)(?:sub)?mesh\Z")
_MESH_RETURNING = {"create_submesh"}
_MESHES_RETURNING = {"get_submeshes", "create_submeshes"}
_MEMBER_LIKE = re.compile(r"[A-Z][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Use:
    name: str  # dotted, from ttnn: "ttnn.cluster.get_cluster_type", "ttnn.MeshDevice.get_submeshes"
    where: str  # "src/tt_vllm_plugin/device/ttnn.py:164"
    how: str  # what in the source makes it a use


@dataclass(frozen=True)
class EnumCandidate:
    """A ttnn chain and an upper-case string constant in the same call or subscript."""

    chain: str
    member: str
    where: str


@dataclass(frozen=True)
class CallSite:
    """A call of a ttnn function or class, or of a mesh device's method, as written."""

    name: str  # dotted callee, as a Use: "ttnn.set_fabric_config", "ttnn.MeshDevice.get_submeshes"
    where: str
    positional: int  # plain positional arguments
    keywords: tuple[str, ...]  # names of the keyword arguments
    unpacked: bool  # *args or **kwargs among them: the arguments are known only when the call runs


@dataclass(frozen=True)
class Constant:
    value: str
    where: str


@dataclass
class Collected:
    uses: list[Use]
    candidates: list[EnumCandidate]
    constants: list[Constant]  # upper-case string constants of the device layer (for typos)
    calls: list[CallSite]


def collect(src_root: Path, package: str = "tt_vllm_plugin") -> Collected:
    """Everything our package ``package`` under ``src_root`` uses from ttnn."""
    files = sorted((src_root / package).rglob("*.py"))
    modules = {_module_name(src_root, path): path for path in files}
    trees = {name: ast.parse(path.read_text(), str(path)) for name, path in modules.items()}
    strings = _string_constants(trees, package)
    returns_ttnn = {
        f"{module}.{node.name}"
        for module, tree in trees.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and _imports_and_returns_ttnn(node)
    }
    collected = Collected([], [], [], [])
    for module, tree in trees.items():
        rel = modules[module].relative_to(src_root.parent).as_posix()
        _FileWalker(module, rel, tree, package, strings, returns_ttnn, collected).run()
    device_layer = {f"{package}.options"} | {m for m in trees if m.startswith(f"{package}.device.")}
    for module in sorted(device_layer & set(trees)):
        rel = modules[module].relative_to(src_root.parent).as_posix()
        collected.constants += _upper_case_constants(trees[module], rel)
    return collected


def option_uses(options_module: object, where: str) -> list[Use]:
    """The ttnn enum members the option tables name: ``TTNN_ENUM_OPTIONS`` maps an option to its enum and
    the values it allows without ttnn."""
    table: dict[str, tuple[str, tuple[str, ...]]] = options_module.TTNN_ENUM_OPTIONS
    uses: list[Use] = []
    for option, (enum, values) in table.items():
        uses.append(Use(f"ttnn.{enum}", where, f"options.TTNN_ENUM_OPTIONS[{option!r}]"))
        uses += [Use(f"ttnn.{enum}.{value.upper()}", where, f"allowed value of {option}") for value in values]
    return uses


def attribute_chain(node: ast.AST) -> list[str] | None:
    """``a.b.c`` -> ``["a", "b", "c"]``; None unless the expression is names and attributes only."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


# --- the AST walk


def _module_name(src_root: Path, path: Path) -> str:
    parts = list(path.relative_to(src_root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports_and_returns_ttnn(node: ast.FunctionDef) -> bool:
    imports = any(
        isinstance(n, ast.Import) and any(a.name == "ttnn" and a.asname in (None, "ttnn") for a in n.names)
        for n in ast.walk(node)
    )
    returns = any(
        isinstance(n, ast.Return) and isinstance(n.value, ast.Name) and n.value.id == "ttnn"
        for n in ast.walk(node)
    )
    return imports and returns


def _string_constants(trees: dict[str, ast.Module], package: str) -> dict[str, dict[str, str]]:
    """Per module: name -> value of its module-level string constants and those it imports from us."""
    local = {
        module: {
            node.targets[0].id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        }
        for module, tree in trees.items()
    }
    result = {module: dict(values) for module, values in local.items()}
    for module, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(package):
                for alias in node.names:
                    value = local.get(node.module, {}).get(alias.name)
                    if value is not None:
                        result[module][alias.asname or alias.name] = value
    return result


class _FileWalker:
    def __init__(
        self,
        module: str,
        rel: str,
        tree: ast.Module,
        package: str,
        strings: dict[str, dict[str, str]],
        returns_ttnn: set[str],
        out: Collected,
    ) -> None:
        self.module, self.rel, self.tree, self.out = module, rel, tree, out
        self.all_strings = strings
        self.strings = strings.get(module, {})
        self.module_aliases: dict[str, str] = {}  # local name -> our module (for mod.CONSTANT)
        self.ttnn_names = {"ttnn"}
        self.mesh_names: set[str] = set()
        returning: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "ttnn" or alias.name.startswith("ttnn."):
                        self.ttnn_names.add(alias.asname or "ttnn")
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(package):
                for alias in node.names:
                    local = alias.asname or alias.name
                    qualified = f"{node.module}.{alias.name}"
                    if qualified in returns_ttnn:
                        returning.add(local)
                    elif local == "ttnn":
                        self.ttnn_names.discard("ttnn")  # ``from tt_vllm_plugin.device import ttnn``
                    if qualified in strings:
                        self.module_aliases[local] = qualified
        returning |= {name.rpartition(".")[2] for name in returns_ttnn if name.rpartition(".")[0] == module}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Call):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [t.id for t in targets if isinstance(t, ast.Name)]
                func = node.value.func
                if isinstance(func, ast.Name) and func.id in returning:
                    self.ttnn_names.update(names)
                elif self._makes_mesh(node.value):
                    self.mesh_names.update(names)
        for node in ast.walk(tree):
            if isinstance(node, (ast.For, ast.comprehension)) and isinstance(node.target, ast.Name):
                call = node.iter
                if (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Attribute)
                    and call.func.attr in _MESHES_RETURNING
                    and self._is_mesh(call.func.value)
                ):
                    self.mesh_names.add(node.target.id)
        self.parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}

    def where(self, node: ast.AST) -> str:
        return f"{self.rel}:{getattr(node, 'lineno', '?')}"

    def ttnn_chain(self, node: ast.AST) -> str | None:
        parts = attribute_chain(node)
        if parts is None or parts[0] not in self.ttnn_names:
            return None
        return ".".join(["ttnn", *parts[1:]])

    def _is_mesh(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.mesh_names or bool(_MESH_NAME.search(node.id))
        if isinstance(node, ast.Attribute):
            return bool(_MESH_NAME.search(node.attr))
        return isinstance(node, ast.Call) and self._makes_mesh(node)

    def _makes_mesh(self, call: ast.Call) -> bool:
        if self.ttnn_chain(call.func) == "ttnn.open_mesh_device":
            return True
        func = call.func
        return isinstance(func, ast.Attribute) and func.attr in _MESH_RETURNING and self._is_mesh(func.value)

    def constant(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return self.strings.get(node.id)
        parts = attribute_chain(node)
        if parts and len(parts) == 2 and parts[0] in self.module_aliases:
            return self.all_strings.get(self.module_aliases[parts[0]], {}).get(parts[1])
        return None

    def run(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                self._attribute(node)
            elif isinstance(node, ast.Call):
                self._call(node)
            elif isinstance(node, ast.Subscript):
                self._subscript(node)

    def _attribute(self, node: ast.Attribute) -> None:
        parent = self.parents.get(node)
        if isinstance(parent, ast.Attribute) and parent.value is node:
            return  # only the longest chain: its prefixes are checked on the way
        chain = self.ttnn_chain(node)
        if chain is not None:
            self.out.uses.append(Use(chain, self.where(node), "attribute"))
        if self._is_mesh(node.value):
            self.out.uses.append(
                Use(f"{MESH_DEVICE_CLASS}.{node.attr}", self.where(node), "mesh device attribute")
            )

    def _call(self, node: ast.Call) -> None:
        func = node.func
        callee = self.ttnn_chain(func)
        if callee is None and isinstance(func, ast.Attribute) and self._is_mesh(func.value):
            callee = f"{MESH_DEVICE_CLASS}.{func.attr}"
        if callee is not None:
            unpacked = any(isinstance(a, ast.Starred) for a in node.args) or any(
                k.arg is None for k in node.keywords
            )
            self.out.calls.append(
                CallSite(
                    callee,
                    self.where(node),
                    sum(not isinstance(a, ast.Starred) for a in node.args),
                    tuple(k.arg for k in node.keywords if k.arg is not None),
                    unpacked,
                )
            )
        if isinstance(func, ast.Name) and func.id in ("getattr", "hasattr") and len(node.args) >= 2:
            name = self.constant(node.args[1])
            if name is not None and re.fullmatch(r"[A-Za-z_]\w*", name):
                target = node.args[0]
                base = self.ttnn_chain(target)
                if base is not None:
                    self.out.uses.append(
                        Use(f"{base}.{name}", self.where(node), f"{func.id} with a constant")
                    )
                elif self._is_mesh(target):
                    self.out.uses.append(
                        Use(f"{MESH_DEVICE_CLASS}.{name}", self.where(node), f"{func.id} on the mesh device")
                    )
        chains = [c for c in (self.ttnn_chain(a) for a in node.args) if c is not None]
        if not chains:
            return
        values = [*node.args, *(k.value for k in node.keywords)]
        members = [v for v in (self.constant(a) for a in values) if v and _MEMBER_LIKE.match(v)]
        for chain in chains:
            for member in members:
                self.out.candidates.append(EnumCandidate(chain, member, self.where(node)))

    def _subscript(self, node: ast.Subscript) -> None:
        base = node.value
        if isinstance(base, ast.Attribute) and base.attr == "__members__":
            base = base.value
        chain = self.ttnn_chain(base)
        member = self.constant(node.slice)
        if chain is not None and member and _MEMBER_LIKE.match(member):
            self.out.candidates.append(EnumCandidate(chain, member, self.where(node)))


def _upper_case_constants(tree: ast.Module, rel: str) -> list[Constant]:
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        Constant(node.value, f"{rel}:{node.lineno}")
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and _MEMBER_LIKE.match(node.value)
    ]
