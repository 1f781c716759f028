"""What our source uses from ttnn (tests/ttnn_names/used.py), checked against the real ``ttnn``, imported:
every name exists where we look for it, every enum member we name is one, every call fits the real
signature, and no string constant of the device layer is a near miss of a member of an enum in use.

Imports nothing of ttnn itself: the module is passed in (tests/real_ttnn, in .venv-ttnn). Signatures come
from ``inspect.signature`` where the object has one, else from the first lines of its docstring, where
nanobind writes them: ``set_fabric_config(config: ttnn._ttnn.fabric.FabricConfig, reliability_mode: ... =
FabricReliabilityMode.STRICT_INIT, ...) -> None``, one line per overload (``MeshShape.__init__`` has three).
"""

from __future__ import annotations

import difflib
import enum
import inspect
import re
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.ttnn_names.used import CallSite, Collected, Constant, Use

_TYPO_RATIO = 0.8  # difflib ratio: one or two characters off (FABRIC_1D_RNG, STRICT_INT, GALAXI)
_OPEN, _CLOSE = "([{<", ")]}>"
_NAME = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class Found:
    kind: str  # module | enum | member | class | function | property | value
    where: str  # the module that defines it, for people
    obj: Any = field(compare=False, repr=False)


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


def _kind(obj: Any) -> str:
    if isinstance(obj, types.ModuleType):
        return "module"
    if isinstance(obj, enum.EnumMeta):
        return "enum"
    if isinstance(obj, enum.Enum):
        return "member"
    if isinstance(obj, type):
        return "class"
    if isinstance(obj, property):
        return "property"
    if callable(obj):
        return "function"
    return "value"


def _where(obj: Any) -> str:
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    return str(getattr(obj, "__module__", None) or type(obj).__module__)


class LiveNames:
    """Dotted names (``ttnn.cluster.get_cluster_type``) resolved by ``getattr`` on the imported module."""

    def __init__(self, module: types.ModuleType) -> None:
        self.module = module

    def resolve(self, dotted: str) -> Found | Missing:
        parts = dotted.split(".")
        if parts[0] != self.module.__name__:
            return Missing("", parts[0], f"not {self.module.__name__}", ())
        obj: Any = self.module
        for i, name in enumerate(parts[1:], start=1):
            try:
                obj = getattr(obj, name)
            except AttributeError:
                prefix = ".".join(parts[:i])
                return Missing(prefix, name, f"{_kind(obj)} {_where(obj)}", _close(name, dir(obj)))
        return Found(_kind(obj), _where(obj), obj)

    def enum_members(self, dotted: str) -> list[str] | None:
        """The members of the enum ``dotted`` names, in ttnn's order; None: not an enum."""
        found = self.resolve(dotted)
        if not isinstance(found, Found) or found.kind != "enum":
            return None
        return list(found.obj.__members__)

    def enums_around(self, dotted: str) -> list[tuple[str, Any]]:
        """The enum ``dotted`` names, or the enums of the module it names (``ttnn.cluster``: ClusterType)."""
        found = self.resolve(dotted)
        if not isinstance(found, Found):
            return []
        if found.kind == "enum":
            return [(dotted, found.obj)]
        if found.kind != "module" or found.obj is self.module:  # the top module: every enum there is
            return []
        return [
            (f"{dotted}.{name}", value)
            for name, value in vars(found.obj).items()
            if isinstance(value, enum.EnumMeta)
        ]

    def documented_unsupported(self, dotted: str) -> list[str]:
        """Members the enum's own docstring marks ``NAME: [Unsupported] ...``."""
        found = self.resolve(dotted)
        doc = found.obj.__doc__ if isinstance(found, Found) else ""
        return re.findall(r"^\s*(\w+):\s*\[Unsupported\]", doc or "", re.M)


def _close(name: str, names: Iterable[str]) -> tuple[str, ...]:
    names = [n for n in names if not n.startswith("__")]
    # Near names first; failing those, the looser ones (FABRIC_2D_DYNAMIC -> FABRIC_2D, ...).
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.75)
    return tuple(close or difflib.get_close_matches(name, names, n=2, cutoff=0.6))


# --- names and enum members


@dataclass(frozen=True)
class Problem:
    use: Use
    missing: Missing

    def __str__(self) -> str:
        return f"{self.use.name}  [{self.use.where}, {self.use.how}]: {self.missing}"


@dataclass
class Report:
    checked: list[tuple[Use, Found]]
    problems: list[Problem]

    @property
    def names(self) -> list[str]:
        return sorted({use.name for use, _ in self.checked} | {p.use.name for p in self.problems})


def check(names: LiveNames, uses: Iterable[Use], collected: Collected | None = None) -> Report:
    """Resolve every use. With ``collected``, its enum candidates become uses when the chain is an enum,
    and its string constants are checked for near misses of the enums in use."""
    report = Report([], [])
    pending = list(dict.fromkeys(uses))
    if collected is not None:
        for candidate in collected.candidates:
            if names.enum_members(candidate.chain) is not None:
                name = f"{candidate.chain}.{candidate.member}"
                how = f"enum member given to a call with {candidate.chain}"
                pending.append(Use(name, candidate.where, how))
    for use in dict.fromkeys(pending):
        found = names.resolve(use.name)
        if isinstance(found, Found):
            report.checked.append((use, found))
        else:
            report.problems.append(Problem(use, found))
    if collected is not None:
        report.problems += _typos(names, report, collected.constants)
    return report


def _typos(names: LiveNames, report: Report, constants: list[Constant]) -> list[Problem]:
    """Constants one or two characters off a member of an enum our code uses, or of an enum of a ttnn
    submodule it uses (``ttnn.cluster.get_cluster_type`` brings ``ttnn.cluster.ClusterType``)."""
    enums: dict[int, tuple[str, list[str]]] = {}  # by enum identity, under the shortest name it is used by
    for use, _ in report.checked:
        parts = use.name.split(".")
        for end in range(2, len(parts) + 1):
            for name, enum_type in names.enums_around(".".join(parts[:end])):
                if id(enum_type) not in enums or len(name) < len(enums[id(enum_type)][0]):
                    enums[id(enum_type)] = (name, list(enum_type.__members__))
    every_member = {member for _, members in enums.values() for member in members}
    problems = []
    for constant in constants:
        if constant.value in every_member or any(c.islower() for c in constant.value):
            continue
        near = []
        for enum_name, members in enums.values():
            close = difflib.get_close_matches(constant.value, members, n=3, cutoff=_TYPO_RATIO)
            if close:
                ratio = difflib.SequenceMatcher(None, constant.value, close[0]).ratio()
                near.append((-ratio, enum_name, close))
        if near:  # one problem per constant: the enum it is likeliest meant for
            _, enum_name, close = min(near)
            use = Use(
                f"{enum_name}.{constant.value}",
                constant.where,
                f"string constant close to {enum_name} members",
            )
            problems.append(Problem(use, Missing(enum_name, constant.value, "enum", tuple(close))))
    return problems


# --- signatures


def signatures(obj: Any) -> list[inspect.Signature]:
    """Every signature ``obj`` can be called with (one per nanobind overload), without the ``self`` of a
    method or of a class's ``__init__``; [] when neither inspect nor the docstring tells."""
    try:
        found = [inspect.signature(obj)]
    except (TypeError, ValueError):  # nanobind functions, methods and classes have no __signature__
        is_class = isinstance(obj, type)
        doc = ((obj.__init__ if is_class else obj).__doc__ or "").strip()
        name = "__init__" if is_class else getattr(obj, "__name__", "")
        # The overloads come first, one a line, up to the first blank line.
        parsed = (doc_signature(line.strip(), name) for line in doc.split("\n\n", 1)[0].splitlines())
        found = [sig for sig in parsed if sig is not None]
    return [_without_self(sig) for sig in found]


def _without_self(sig: inspect.Signature) -> inspect.Signature:
    params = list(sig.parameters.values())
    return sig.replace(parameters=params[1:]) if params and params[0].name == "self" else sig


def doc_signature(line: str, name: str) -> inspect.Signature | None:
    """``name(a: int, b: X = X.Y, *, c: int = 0) -> None`` as a Signature (defaults as text); None when
    the line is not a signature of ``name``."""
    if not line.startswith(f"{name}("):
        return None
    inner = _inside_parentheses(line, len(name))
    if inner is None:
        return None
    params: list[inspect.Parameter] = []
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    for piece in (p.strip() for p in _split_top(inner, ",")):
        if not piece:
            continue
        if piece == "/":
            params = [p.replace(kind=inspect.Parameter.POSITIONAL_ONLY) for p in params]
            continue
        if piece == "*":
            kind = inspect.Parameter.KEYWORD_ONLY
            continue
        stars = len(piece) - len(piece.lstrip("*"))
        match = _NAME.match(piece.lstrip("*"))
        if match is None:
            return None
        if stars:
            star_kind = inspect.Parameter.VAR_POSITIONAL if stars == 1 else inspect.Parameter.VAR_KEYWORD
            params.append(inspect.Parameter(match.group(), star_kind))
            kind = inspect.Parameter.KEYWORD_ONLY
            continue
        default_text = _split_top(piece, "=")[1:]
        default = "=".join(default_text).strip() if default_text else inspect.Parameter.empty
        params.append(inspect.Parameter(match.group(), kind, default=default))
    try:
        return inspect.Signature(params)
    except ValueError:  # not a valid parameter order: not a signature after all
        return None


def _inside_parentheses(line: str, at: int) -> str | None:
    depth = 0
    for i in range(at, len(line)):
        if line[i] in _OPEN:
            depth += 1
        elif line[i] in _CLOSE and not _is_arrow(line, i):
            depth -= 1
            if depth == 0:
                return line[at + 1 : i]
    return None


def _split_top(text: str, separator: str) -> list[str]:
    """``text`` split at ``separator`` outside brackets and quotes (``->`` is not a bracket)."""
    pieces, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in _OPEN:
            depth += 1
        elif char in _CLOSE and not _is_arrow(text, i):
            depth -= 1
        elif char == separator and depth == 0 and not (char == "=" and text[i + 1 : i + 2] == "="):
            pieces.append(text[start:i])
            start = i + 1
    return [*pieces, text[start:]]


def _is_arrow(text: str, i: int) -> bool:
    return text[i] == ">" and text[i - 1 : i] == "-"


def bind_problem(name: str, obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """Why ``obj(*args, **kwargs)`` does not fit any of its real signatures; None when it fits one."""
    sigs = signatures(obj)
    if not sigs:
        return f"{name}: no signature to check against (neither inspect.signature nor its docstring)"
    errors = []
    for sig in sigs:
        try:
            sig.bind(*args, **kwargs)
            return None
        except TypeError as error:
            errors.append(f"{sig}: {error}")
    return f"{name} does not take these arguments: " + " | ".join(errors)


def call_problems(names: LiveNames, calls: Iterable[CallSite]) -> Iterator[str]:
    """Every call written without ``*``/``**`` that fits none of the callee's real signatures."""
    for call in calls:
        if call.unpacked:
            continue
        found = names.resolve(call.name)
        if not isinstance(found, Found):
            yield f"{call.name} [{call.where}]: {found}"
            continue
        args = tuple(f"<positional {i + 1}>" for i in range(call.positional))
        problem = bind_problem(call.name, found.obj, args, dict.fromkeys(call.keywords, "<keyword>"))
        if problem is not None:
            yield f"{problem} [{call.where}]"
