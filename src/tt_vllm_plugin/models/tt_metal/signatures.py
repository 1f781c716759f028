"""Calling tt-metal's generators whatever their release: what a method really takes (following the
shims generator classes put in front of it), and calls with only the arguments a signature names.

Nothing here imports tt-metal: it reads the signatures (``inspect``) of whatever it is handed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

# tt-metal's signatures moved between releases, and what a generator class shows is often a shim:
# generator_vllm.py's classes define ``prefill_forward(self, *args, **kwargs)`` returning
# ``super().prefill_forward_text(...)``, and ``decode_forward`` returning ``super().decode_forward_text``
# (tenstorrent/tt-metal 0015d62ba229715e1a2490489c17fce1ed317338) or, in current releases,
# ``super().decode_forward(...)`` (2a43729eb2eb37d76004e978da0af31e33829840, with Generator.decode_forward
# at 421a32c198c9ce77908f704f673da5d0a0ffa3f8). The real signature is where the shim leads, so the adapter
# follows the shim instead of guessing a name. Shims also sit inside Generator itself: in the ttt_compat
# layout ``prefill_forward_text(self, *args, **kwargs)`` only wraps ``self._prefill_forward_text_impl``
# (models/ttt_compat/tt/generator.py @ 1a6b64e03908f3ef0493692a2a6017f74ae06796: it flushes the decode trace
# that its first traced prefill deferred), so the impl holds the signature. And a real signature's
# ``**kwargs`` (prefill_forward_text at 421a32c1 hands them on to ``prepare_inputs_prefill``) does not mean
# "takes anything": an optional argument is passed only where the target names it.

_PASS_THROUGH = [inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD]
_MAX_SHIM_DEPTH = 8


def accepts(function: Callable[..., Any], name: str) -> bool:
    """Whether ``function`` names keyword parameter ``name`` (``**kwargs`` alone does not count)."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return True  # builtins without a signature: let the call decide
    parameter = parameters.get(name)
    return parameter is not None and parameter.kind is not inspect.Parameter.POSITIONAL_ONLY


def _is_pass_through(function: Callable[..., Any]) -> bool:
    """``(self, *args, **kwargs)``, possibly with keyword-only arguments the shim takes itself (tt-metal's
    hybrid classes: ``prefill_forward(self, *args, page_tables_per_layer=None, **kwargs)``): a shim that
    hands everything else to another method."""
    try:
        kinds = [p.kind for p in inspect.signature(function).parameters.values()]
    except (TypeError, ValueError):
        return False
    if len(kinds) < 3 or kinds[1] is not inspect.Parameter.VAR_POSITIONAL:
        return kinds == _PASS_THROUGH  # (*args, **kwargs) without self
    return kinds[-1] is inspect.Parameter.VAR_KEYWORD and all(
        kind is inspect.Parameter.KEYWORD_ONLY for kind in kinds[2:-1]
    )


def _class_function(mro: tuple[type, ...], name: str, start: int) -> tuple[int, Any] | None:
    """The first definition of ``name`` in ``mro[start:]``, with its index (staticmethod etc. unwrapped)."""
    for index in range(start, len(mro)):
        found = vars(mro[index]).get(name)
        if found is not None:
            return index, getattr(found, "__func__", found)
    return None


def _shim_callee(function: Any, name: str, mro: tuple[type, ...], index: int) -> tuple[str, int] | None:
    """Which method a pass-through ``name`` calls (``<name>_text``, ``name`` through super(), or its
    ``_<name>_impl``) and where in ``mro`` to look for it: after this class for ``super()``, after ``X``
    for ``super(X, self)`` (tt-metal's hybrid classes skip their base's placeholder that way), else from
    the start."""
    names = getattr(getattr(function, "__code__", None), "co_names", ())
    via_super = "super" in names
    start = 0
    if via_super:
        named = [i for i, cls in enumerate(mro) if cls.__name__ in names and i > index]
        start = (named[0] if named else index) + 1
    for callee in (f"{name}_text", name, f"_{name}_impl"):
        if callee in names and (callee != name or via_super):
            return callee, start
    return None


def forward_chain(generator: Any, method: str) -> list[Callable[..., Any]]:
    """The functions ``generator.<method>(...)`` goes through, shims first; the last one's signature says
    what the call really takes, and a keyword any of them names is taken (a shim may take one itself)."""
    own = getattr(generator, "__dict__", {})
    if method in own:  # set on the instance (tests wrap calls this way)
        return [own[method]]
    mro, name, start = type(generator).__mro__, method, 0
    chain: list[Any] = []
    for _ in range(_MAX_SHIM_DEPTH):
        found = _class_function(mro, name, start)
        if found is None:
            break
        index, function = found
        chain.append(function)
        callee = _shim_callee(function, name, mro, index) if _is_pass_through(function) else None
        if callee is None:
            break
        name, start = callee
    return chain or [getattr(generator, method)]


def forward_target(generator: Any, method: str) -> Callable[..., Any]:
    """The function whose signature says what ``generator.<method>(...)`` really takes."""
    return forward_chain(generator, method)[-1]


def initialize_kwargs(
    initialize: Callable[..., Any], n_layers: int | None, tt_data_parallel: int, optimizations: str | None
) -> dict[str, Any]:
    """The keyword arguments of ``initialize_vllm_model`` this release takes.

    ``n_layers`` goes only when set (Tenstorrent's loader never passes it); ``tt_data_parallel`` and
    ``optimizations`` wherever the signature names them, ``optimizations=None`` when the TT option is unset,
    as Tenstorrent's loader passes it (vllm-tt-plugin e3fc849 loader.py). Generators without them
    (generator_vllm.py at 4d4a062913c5f5273ce33ce93fc7f2bb6543166c has no ``optimizations``; its Mllama
    class no ``n_layers``) get nothing, unless a value they cannot honour was asked for.
    """
    kwargs: dict[str, Any] = {}
    wanted = {"n_layers": n_layers, "tt_data_parallel": tt_data_parallel, "optimizations": optimizations}
    unset = {"n_layers": None, "tt_data_parallel": 1, "optimizations": None}
    for name, value in wanted.items():
        if accepts(initialize, name):
            if name != "n_layers" or value is not None:
                kwargs[name] = value
        elif value != unset[name]:
            raise TypeError(
                f"{getattr(initialize, '__qualname__', initialize)} takes no {name} (this tt-metal release), "
                f"but {name}={value!r} was asked for."
            )
    return kwargs


def call_with_accepted(
    hook: Callable[..., Any], offered: dict[str, Any], named_only: frozenset[str] = frozenset()
) -> Any:
    """Call ``hook`` with the keyword arguments of ``offered`` it takes; its signatures differ between
    tt-metal releases. A hook with ``**kwargs`` gets everything but ``named_only`` (arguments only some
    releases know, passed only where named). A required argument we cannot supply is an error naming it."""
    try:
        parameters = inspect.signature(hook).parameters
    except (TypeError, ValueError):
        return hook(**{name: value for name, value in offered.items() if name not in named_only})
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return hook(**{k: v for k, v in offered.items() if k not in named_only or k in parameters})
    missing = [
        name
        for name, p in parameters.items()
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and name not in offered
    ]
    if missing:
        raise TypeError(f"{getattr(hook, '__qualname__', hook)} needs argument(s) we do not have: {missing}")
    return hook(**{name: value for name, value in offered.items() if name in parameters})
