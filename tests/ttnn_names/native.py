"""The names a nanobind extension module (ttnn's ``_ttnn*.so``) binds, read from its ELF file.

nanobind hands every Python-visible name to its runtime as a C string literal: class and enum names
(``nb_type_new``, ``enum_create``), enum members (``enum_append``), functions and methods
(``nb_func_new``), properties (``property_install``), submodules (``module_new_submodule``) and class
look-ups (``module.attr("MeshDevice")``: ``getattr_or_raise``). ttnn ships the extension with its symbol
table, so each string load (an x86-64 RIP-relative ``lea``) can be placed in the binding function that
makes it (e.g. ``ttnn::fabric::bind_fabric_api``) and paired with the nanobind call that consumes it (the
next direct ``call``). Read in address order, a binding function's string loads then say what its source
says: "enum FabricConfig: DISABLED, FABRIC_1D, ...", "class MeshDevice: method get_submeshes, ...".
A function is a method when its signature descriptor (a symbol ``func_create<...>::descr``) carries
nanobind's ``is_method``.

Which Python submodule a binding function fills is decided in the extension's init function
(``nanobind__ttnn_exec``): it keeps each ``module_new_submodule`` result in a stack slot and passes that
slot to the binding functions; the few instruction forms it uses for that are decoded here. Binding
functions the init function does not call directly get the submodule of the other functions of their C++
namespace.

Not visible this way: names Python code creates at run time (ttnn registers its C++ operations under
computed names), and whether a non-method function bound while a class is current is a static method or a
module function (nanobind's call is the same for both): such a name counts for both, as "function".
"""

from __future__ import annotations

import bisect
import re
import struct
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# nanobind's signature descriptors, e.g. "({%}, {int}) -> None"; "def ..." for nb::sig overrides.
_DESCR = re.compile(r"\(.*\) -> |def ", re.S)
# lea disp32(%rip), reg: REX.W (+R), 8D, ModRM with mod=00 rm=101.
_LEA_RIP = re.compile(rb"[\x48\x4c]\x8d[\x05\x0d\x15\x1d\x25\x2d\x35\x3d]")
_CALL_REACH = 512  # bytes from a string load to the call that consumes it
_RAX, _RSI, _RDI = 0, 6, 7
_CALLEE_SAVED = frozenset({3, 5, 12, 13, 14, 15})  # rbx, rbp, r12-r15


@dataclass
class Scope:
    """A bound class or enum and what the binding functions put on it."""

    kind: str  # "class" | "enum"
    name: str
    module: str | None  # submodule of the extension ("" = the extension itself); None: not attributed
    doc: str = ""
    members: dict[str, str] = field(default_factory=dict)  # name -> method|property|value|function|attribute
    binders: set[str] = field(default_factory=set)  # the C++ binding functions that add to it


@dataclass
class NativeIndex:
    extension: str  # e.g. "ttnn._ttnn"
    submodules: set[str]  # the extension's submodules (``ttnn._ttnn.fabric`` -> "fabric")
    binder_module: dict[str, str | None]  # binding function -> submodule it fills
    module_defs: dict[str | None, dict[str, str]]  # submodule -> name -> class|enum|function|attribute
    scopes: dict[tuple[str | None, str], Scope]
    strings: frozenset[str]  # every identifier-like string the extension holds

    def scope(self, module: str | None, name: str) -> Scope | None:
        found = self.scopes.get((module, name))
        if found is None and module is not None:
            found = self.scopes.get((None, name))  # bound by a function whose submodule is unknown
        return found

    def module_kind(self, module: str, name: str) -> str | None:
        """What ``<extension>.<module>.<name>`` is: "module", "class", "enum", "function", or None."""
        if not module and name in self.submodules:
            return "module"
        kind = self.module_defs.get(module, {}).get(name)
        return kind or self.module_defs.get(None, {}).get(name)


@dataclass
class _Load:
    at: int  # address of the lea
    reg: int  # destination register
    text: str
    symbol: str | None  # object symbol at the string's address (nanobind's ``descr`` arrays)


@dataclass
class _Call:
    at: int
    target: str  # mangled symbol name
    loads: list[_Load] = field(default_factory=list)  # the string loads this call consumes

    @property
    def nb_api(self) -> str | None:
        """``enum_create`` for ``nanobind::detail::enum_create(...)``, else None."""
        parts = _nested_name(self.target)
        return parts[2] if parts and parts[:2] == ["nanobind", "detail"] and len(parts) > 2 else None

    def first_ident(self, start: int = 0) -> str | None:
        return next((load.text for load in self.loads[start:] if _IDENT.match(load.text)), None)


class _Elf:
    """Just enough of an x86-64 ELF shared object: sections, function and object symbols, PLT names."""

    def __init__(self, data: bytes) -> None:
        if (
            data[:4] != b"\x7fELF"
            or data[4] != 2
            or data[5] != 1
            or struct.unpack_from("<H", data, 18)[0] != 62
        ):
            raise ValueError("not a little-endian x86-64 ELF64 file")
        self.data = data
        shoff = struct.unpack_from("<Q", data, 0x28)[0]
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
        raw = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
        names_at = raw[shstrndx][4]
        self.sections = {self._cstr(names_at + s[0]): s for s in raw}
        self.by_index = raw
        self.text_addr, self.text = self._section(".text")
        self.functions: dict[int, str] = {}
        self.objects: dict[int, str] = {}
        symtab = self.sections.get(".symtab")
        if symtab is None:
            raise ValueError(
                "the extension has no symbol table (stripped): binding functions cannot be told apart"
            )
        for value, info, name in self._symbols(symtab):
            if value and info & 0xF == 2:
                self.functions.setdefault(value, name.removesuffix("$plt"))  # lld names its PLT stubs
            elif value and info & 0xF == 1:
                self.objects.setdefault(value, name)
        self.function_starts = sorted(self.functions)
        self.plt = self._plt_names()
        self.rodata = sorted(
            (s[3], s[3] + s[5], s[4]) for name, s in self.sections.items() if name.startswith(".rodata")
        )

    def _cstr(self, offset: int) -> str:
        return self.data[offset : self.data.index(b"\0", offset)].decode("utf-8", "replace")

    def _section(self, name: str) -> tuple[int, bytes]:
        s = self.sections[name]
        return s[3], self.data[s[4] : s[4] + s[5]]

    def _symbols(self, table: tuple[int, ...]) -> Iterator[tuple[int, int, str]]:
        strings_at = self.by_index[table[6]][4]
        for i in range(table[5] // 24):
            st_name, st_info, _, _, st_value, _ = struct.unpack_from("<IBBHQQ", self.data, table[4] + i * 24)
            yield st_value, st_info, self._cstr(strings_at + st_name)

    def _plt_names(self) -> dict[int, str]:
        """PLT stub address -> the symbol it jumps to (``jmp *GOT(%rip)``; the GOT slot's relocation)."""
        dynsym = self.sections.get(".dynsym")
        if dynsym is None:
            return {}
        names = [name for _, _, name in self._symbols(dynsym)]
        slot_symbol: dict[int, str] = {}
        for rela in (".rela.plt", ".rela.dyn"):
            s = self.sections.get(rela)
            for i in range(s[5] // 24 if s else 0):
                offset, info, _ = struct.unpack_from("<QQq", self.data, s[4] + i * 24)
                if info >> 32:
                    slot_symbol[offset] = names[info >> 32]
        stubs: dict[int, str] = {}
        for section in (".plt", ".plt.sec", ".plt.got"):
            if section not in self.sections:
                continue
            addr, code = self._section(section)
            for at in range(0, len(code) - 6):
                if code[at : at + 2] == b"\xff\x25":  # jmp *disp32(%rip)
                    slot = addr + at + 6 + struct.unpack_from("<i", code, at + 2)[0]
                    if slot in slot_symbol:  # the call lands on the jmp, or on the stub's endbr64
                        stubs.setdefault(addr + at, slot_symbol[slot])
                        stubs.setdefault(addr + at - at % 16, slot_symbol[slot])
        return stubs

    def function_at(self, addr: int) -> str | None:
        i = bisect.bisect_right(self.function_starts, addr) - 1
        return self.functions[self.function_starts[i]] if i >= 0 else None

    def string_at(self, addr: int) -> str | None:
        i = bisect.bisect_right(self.rodata, (addr, float("inf"), 0)) - 1
        if i < 0 or not self.rodata[i][0] <= addr < self.rodata[i][1]:
            return None
        start = self.rodata[i][2] + addr - self.rodata[i][0]
        end = self.data.find(b"\0", start, start + 16384)
        if end < 0:
            return None
        try:
            text = self.data[start:end].decode("utf-8")
        except UnicodeDecodeError:
            return None
        return text if all(c.isprintable() or c in "\n\r\t" for c in text) else None

    def call_target(self, offset: int) -> str | None:
        """The function a ``call rel32`` at text offset ``offset`` reaches, if it lands on one."""
        target = self.text_addr + offset + 5 + struct.unpack_from("<i", self.text, offset + 1)[0]
        return self.functions.get(target) or self.plt.get(target)


def _nested_name(mangled: str) -> list[str] | None:
    """``_ZN4ttnn6fabric15bind_fabric_apiERN8nanobind7module_E`` -> ["ttnn", "fabric", "bind_fabric_api"]."""
    match = re.match(r"_Z(?:L\d*)?N(?:K)?", mangled) or re.match(r"_ZL?", mangled)
    if not match:
        return None
    at, parts = match.end(), []
    while at < len(mangled) and mangled[at].isdigit():
        digits = re.match(r"\d+", mangled[at:])
        assert digits is not None
        size = int(digits.group())
        at += len(digits.group())
        parts.append(mangled[at : at + size])
        at += size
    return parts or None


def _binder_namespace(mangled: str) -> str | None:
    parts = _nested_name(mangled)
    return parts[1] if parts and len(parts) > 2 and parts[0] == "ttnn" else None


def _takes_module(mangled: str) -> bool:
    return mangled.endswith("ERN8nanobind7module_E")  # f(nanobind::module_&)


def build_native_index(data: bytes, extension: str) -> NativeIndex:
    """Index the extension ``extension`` (e.g. "ttnn._ttnn") from the bytes of its ``.so`` file."""
    elf = _Elf(data)
    calls_by_function = _calls_by_function(elf)
    submodules, binder_module = _init_function_modules(elf, calls_by_function, extension.rpartition(".")[2])
    binder_module = _attribute_by_namespace(binder_module, calls_by_function, submodules)

    module_defs: dict[str | None, dict[str, str]] = defaultdict(dict)
    scopes: dict[tuple[str | None, str], Scope] = {}
    by_name: dict[str, list[Scope]] = defaultdict(list)
    # First every class and enum, so a later ``module.attr("Name")`` in another function finds them.
    for function, calls in calls_by_function.items():
        module = binder_module.get(function)
        for call in calls:
            if call.nb_api in ("enum_create", "nb_type_new") and (name := call.first_ident()):
                kind = "enum" if call.nb_api == "enum_create" else "class"
                doc = next((load.text for load in call.loads if not _IDENT.match(load.text)), "")
                scope = scopes.setdefault((module, name), Scope(kind, name, module, doc))
                by_name[name].append(scope)
                module_defs[module][name] = kind
    for function, calls in calls_by_function.items():
        module = binder_module.get(function)
        current: Scope | None = None
        for call in calls:
            api = call.nb_api
            if api in ("enum_create", "nb_type_new") and (name := call.first_ident()):
                current = scopes[(module, name)]
            elif api in ("getattr_or_raise", "getattr") and (name := call.first_ident()):
                found = scopes.get((module, name)) or (by_name[name][0] if len(by_name[name]) == 1 else None)
                current = found or current
            elif api == "enum_append" and current is not None and current.kind == "enum":
                if name := call.first_ident():
                    current.members[name] = "value"
            elif api == "property_install" and current is not None and (name := call.first_ident()):
                current.members[name] = "property"
            elif api == "nb_func_new":
                _bind_function(call, module, current, module_defs)
            elif api == "accessor" and (name := call.first_ident()) and not name.startswith("__"):
                # obj.attr("NAME") = value: obj is the module or the current class; nanobind can't tell.
                module_defs[module].setdefault(name, "attribute")
                if current is not None:
                    current.members.setdefault(name, "attribute")
            else:
                continue
            if current is not None:
                current.binders.add(function)
    strings = frozenset(
        load.text
        for calls in calls_by_function.values()
        for call in calls
        for load in call.loads
        if _IDENT.match(load.text)
    )
    return NativeIndex(extension, submodules, binder_module, dict(module_defs), scopes, strings)


def _bind_function(
    call: _Call, module: str | None, current: Scope | None, module_defs: dict[str | None, dict[str, str]]
) -> None:
    descr = next((i for i, load in enumerate(call.loads) if _DESCR.match(load.text)), None)
    if descr is None:
        return
    # The name is loaded right after the descriptor. Nothing there: a property's getter or setter (named by
    # the property_install that follows), or an overload whose name the compiler kept in a register.
    name = call.loads[descr + 1].text if descr + 1 < len(call.loads) else None
    if name is None or not _IDENT.match(name):
        return
    is_method = "9is_method" in (call.loads[descr].symbol or "")
    if is_method and current is not None:
        current.members[name] = "method"
        return
    module_defs[module].setdefault(name, "function")
    if current is not None:
        current.members.setdefault(
            name, "function"
        )  # def_static, or m.def after a class: nanobind can't tell


def _calls_by_function(elf: _Elf) -> dict[str, list[_Call]]:
    """For every function: its calls, each with the string loads it consumes, in address order."""
    calls: dict[str, dict[int, _Call]] = defaultdict(dict)
    text = elf.text
    for match in _LEA_RIP.finditer(text):
        at = match.start()
        addr = elf.text_addr + at + 7 + struct.unpack_from("<i", text, at + 3)[0]
        value = elf.string_at(addr)
        if value is None:
            continue
        function = elf.function_at(elf.text_addr + at)
        if function is None:
            continue
        reg = (text[at] >> 2 & 1) << 3 | text[at + 2] >> 3 & 7
        load = _Load(elf.text_addr + at, reg, value, elf.objects.get(addr))
        call = _next_call(elf, at + 7)
        if call is None:
            continue
        entry = calls[function].setdefault(call[0], _Call(elf.text_addr + call[0], call[1]))
        entry.loads.append(load)
    return {function: [found[k] for k in sorted(found)] for function, found in calls.items()}


def _next_call(elf: _Elf, start: int) -> tuple[int, str] | None:
    text, at = elf.text, start
    end = min(len(text) - 5, start + _CALL_REACH)
    while True:
        at = text.find(b"\xe8", at, end)
        if at < 0:
            return None
        target = elf.call_target(at)
        if target is not None:
            return at, target
        at += 1


# --- the init function: which stack slot holds which submodule, and which binding function gets which slot.


def _init_function_modules(
    elf: _Elf, calls_by_function: dict[str, list[_Call]], extension: str
) -> tuple[set[str], dict[str, str | None]]:
    names = (f"nanobind_{extension}_exec", f"PyInit_{extension}")  # PyInit_: nanobind before 2.0
    init = next((f for name in names for f in calls_by_function if _nested_name(f) == [name]), None)
    if init is None:
        return set(), {}
    start = next(addr for addr, name in elf.functions.items() if name == init) - elf.text_addr
    end = elf.function_starts[bisect.bisect_right(elf.function_starts, start + elf.text_addr)] - elf.text_addr
    code = elf.text[start:end]
    regs: dict[int, tuple[str, object]] = {}  # register -> ("str", text) | ("slot", offset) | ("result", n)
    slots: dict[int, tuple[str, object]] = {}
    parents: list[tuple[tuple[str, object] | None, str, int]] = []  # (parent, name, slot) per submodule
    calls: list[tuple[str, tuple[str, object] | None]] = []  # (callee, rdi) per call taking a module
    result = 0
    at = 0
    while at < len(code):
        target = elf.call_target(start + at) if code[at] == 0xE8 and at + 5 <= len(code) else None
        if target is not None:
            parts = _nested_name(target)
            if parts and parts[:3] == ["nanobind", "detail", "module_new_submodule"]:
                parents.append((regs.get(_RDI), str(regs.get(_RSI, ("", ""))[1]), result))
            elif _takes_module(target):
                calls.append((target, regs.get(_RDI)))
            # Caller-saved registers are gone after a call; rbx, rbp, r12-r15 keep their values.
            regs = {r: v for r, v in regs.items() if r in _CALLEE_SAVED}
            regs[_RAX] = ("result", result)
            result += 1
            at += 5
            continue
        step = _decode(code, at, elf.text_addr + start)
        if step is None:
            at += 1
            continue
        kind, size, *args = step
        if kind == "lea_rip":
            regs[args[0]] = ("str", elf.string_at(args[1]) or "")
        elif kind == "lea_rsp":
            regs[args[0]] = ("slot", args[1])
        elif kind == "mov_rr":
            regs[args[1]] = regs.get(args[0], ("?", None))
        elif kind == "load_rsp":  # mov disp(%rsp), reg
            regs[args[0]] = ("load", args[1])
        elif kind == "store_rsp" and args[0] == _RAX:
            slots[args[1]] = regs.get(_RAX, ("?", None))
        elif kind == "store_ind" and args[0] == _RAX and regs.get(args[1], ("", None))[0] == "slot":
            slots[regs[args[1]][1]] = regs.get(_RAX, ("?", None))  # type: ignore[index]
        at += size
    # A submodule's parent is the root when it is the parent most submodules share.
    common = Counter(repr(parent) for parent, _, _ in parents).most_common(1)
    root = common[0][0] if common else None
    slot_names: dict[int, str] = {}
    submodules: set[str] = set()
    for parent, name, made in parents:
        if repr(parent) != root or not _IDENT.match(name):
            continue
        submodules.add(name)
        for slot, value in slots.items():
            if value == ("result", made):
                slot_names[slot] = name
    binder_module: dict[str, str | None] = {init: ""}
    for callee, rdi in calls:
        if rdi and rdi[0] == "slot" and rdi[1] in slot_names:
            binder_module[callee] = slot_names[rdi[1]]  # type: ignore[index]
    return submodules, binder_module


def _decode(code: bytes, at: int, base: int) -> tuple | None:
    """The few instruction forms the init function uses to move module handles, else None."""
    rex = code[at]
    if rex & 0xF0 != 0x40 or at + 3 > len(code):
        return None
    op, modrm = code[at + 1], code[at + 2]
    reg = (rex >> 2 & 1) << 3 | modrm >> 3 & 7
    rm = (rex & 1) << 3 | modrm & 7
    mod = modrm >> 6
    if op == 0x8D and mod == 0 and modrm & 7 == 5 and rex & 0xFB == 0x48:
        return ("lea_rip", 7, reg, base + at + 7 + struct.unpack_from("<i", code, at + 3)[0])
    rsp_based = modrm & 7 == 4 and not rex & 1 and code[at + 3 : at + 4] == b"\x24"  # SIB: base rsp
    if (
        op in (0x8D, 0x89, 0x8B)
        and mod in (0, 1, 2)
        and rsp_based
        and at + {0: 4, 1: 5, 2: 8}[mod] <= len(code)
    ):
        size = {0: 4, 1: 5, 2: 8}[mod]
        disp = 0 if mod == 0 else struct.unpack_from("<b" if mod == 1 else "<i", code, at + 4)[0]
        kind = {0x8D: "lea_rsp", 0x89: "store_rsp", 0x8B: "load_rsp"}[op]
        return (kind, size, reg, disp)
    if op == 0x89 and mod == 3:
        return ("mov_rr", 3, reg, rm)
    if op == 0x89 and mod == 0 and modrm & 7 not in (4, 5):
        return ("store_ind", 3, reg, rm)
    return None


def _attribute_by_namespace(
    binder_module: dict[str, str | None], calls_by_function: dict[str, list[_Call]], submodules: set[str]
) -> dict[str, str | None]:
    """Binding functions the init function does not call take the submodule of their C++ namespace's
    other binding functions (``ttnn::distributed::*`` -> "multi_device"), else the submodule of that name."""
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for function, module in binder_module.items():
        namespace = _binder_namespace(function)
        if namespace and module:
            votes[namespace][module] += 1
    result = dict(binder_module)
    for function in calls_by_function:
        if function in result:
            continue
        namespace = _binder_namespace(function)
        if namespace in votes and len(votes[namespace]) == 1:
            result[function] = next(iter(votes[namespace]))
        elif namespace in submodules:
            result[function] = namespace
        else:
            result[function] = None
    return result
