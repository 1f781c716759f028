"""Exactly one platform plugin: hide every other plugin distribution from vLLM's discovery.

vLLM finds platform plugins with ``importlib.metadata.entry_points(group="vllm.platform_plugins")``
and keeps them in a dict keyed by entry-point NAME. tt-vllm-plugin and tt-xla's ``vllm_tt`` both
register ``tt``, so with both installed the one discovered last wins, silently, and ``VLLM_PLUGINS``
(which matches names) cannot choose between them.

The mechanism. ``importlib.metadata.entry_points()`` considers only the FIRST distribution of each
(normalised) name found along ``sys.path``. tt-serve writes, for every other distribution that
registers a platform plugin, an empty placeholder ``<name>-0+hidden.by.tt.serve.dist-info`` (METADATA
only, no entry points) into a cache folder, and puts that folder first on the server's
``PYTHONPATH``. The real distribution is then shadowed and vLLM sees one platform plugin: the chosen
one. All of a hidden distribution's entry points go, not only ``tt``: a plugin distribution may also
register ``vllm.general_plugins`` (tt-xla's has a hook that patches vLLM's attention layers), which
must not run in a server of another backend. General plugins run inside every server process, so
distributions that register only those are hidden too, unless they are the chosen plugin's own,
vLLM's, or trusted in the config file (``trust.general_plugins``). The server runs with the working
directory off ``sys.path`` (``-P``), so nothing precedes the placeholder folder; the checks probe the
server's environment with the placeholders in place and refuse to start unless exactly the chosen
plugin is visible.

Why this and not a patch of ``entry_points``: the narrowing must hold in every Python process of the
server. vLLM starts the engine core with multiprocessing (fork by default, spawn when
``VLLM_WORKER_MULTIPROC_METHOD=spawn`` or when CUDA/XPU/Ray/NUMA force it) and may start extra API
server processes; a spawned child runs ``multiprocessing.spawn``'s entry, not a launcher shim, so an
in-process patch would be lost there. A placeholder on ``PYTHONPATH`` is inherited by every child
through the environment, needs no code to run at start-up (no ``sitecustomize``/``.pth``, which could
clash with ones the environment already has), and works for fork, spawn and forkserver alike. The
hidden distributions' modules stay importable; only their metadata (entry points, version) is hidden,
in the server's processes only. ``VLLM_PLUGINS`` is passed through untouched and keeps its documented
meaning on the entry points that remain.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tt_serve import envs
from tt_serve.trust import normalize
from tt_serve.versions import VLLM_DISTRIBUTIONS

PLACEHOLDER_VERSION = "0+hidden.by.tt.serve"
_COMPLETE = ".complete"


@dataclass(frozen=True)
class Provider:
    """An installed distribution that registers vLLM plugins, as vLLM's discovery sees it (from the probe)."""

    distribution: str
    normalized: str
    version: str
    entry_points: tuple[str, ...]
    location: str

    @classmethod
    def from_probe(cls, found: Mapping[str, Any]) -> Provider:
        return cls(
            str(found["distribution"]),
            str(found["normalized"]),
            str(found["version"]),
            tuple(found["entry_points"]),
            str(found["location"]),
        )


def providers(found: Sequence[Mapping[str, Any]]) -> list[Provider]:
    return [Provider.from_probe(item) for item in found]


@dataclass(frozen=True)
class Narrowing:
    chosen: str  # the distribution whose platform plugin stays visible
    hidden: tuple[Provider, ...]  # platform plugins of other distributions, and untrusted general plugins
    directory: Path | None  # the placeholder folder; None when nothing needs hiding

    def pythonpath(self, existing: str | None) -> str | None:
        if self.directory is None:
            return existing
        return os.pathsep.join([str(self.directory), *([existing] if existing else [])])

    def apply(self, changes: dict[str, str], inherited: Mapping[str, str]) -> None:
        """Put the placeholder folder first on the server's PYTHONPATH: the one ``changes`` sets (a config
        entry's or backend's ``env``), else the inherited one. The probe and the launch both use this, so
        the server runs with the very path that was checked."""
        if self.directory is not None:
            changes["PYTHONPATH"] = self.pythonpath({**inherited, **changes}.get("PYTHONPATH")) or ""


def plan(
    distribution: str,
    platform_plugins: Sequence[Provider],
    general_plugins: Sequence[Provider],
    keep_general: Iterable[str] = (),
) -> Narrowing:
    """Hide every other platform plugin, and every general plugin not of a kept distribution (the
    chosen plugin's own, vLLM's, and those the config file trusts: they run inside every server)."""
    chosen = normalize(distribution)
    kept = {chosen, *(normalize(name) for name in (*VLLM_DISTRIBUTIONS, *keep_general))}
    hidden: dict[str, Provider] = {}
    for provider in platform_plugins:
        if provider.normalized != chosen:
            hidden.setdefault(provider.normalized, provider)
    for provider in general_plugins:
        if provider.normalized not in kept:
            hidden.setdefault(provider.normalized, provider)
    ordered = tuple(hidden.values())
    return Narrowing(distribution, ordered, _placeholder_dir(ordered) if ordered else None)


def _cache_root() -> Path:
    """``$TT_SERVE_CACHE``, else ``$XDG_CACHE_HOME/tt-serve`` (``~/.cache/tt-serve``)."""
    configured = envs.TT_SERVE_CACHE.get()
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "tt-serve"


def _placeholder_dir(hidden: Sequence[Provider]) -> Path:
    """Write (once) the placeholder dist-infos for these distributions; the folder is reused later."""
    names = sorted({p.normalized: p.distribution for p in hidden}.items())
    key = hashlib.sha256(repr(names).encode()).hexdigest()[:16]
    root = _cache_root() / "hidden-plugins" / key
    if (root / _COMPLETE).is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=key + ".", dir=root.parent))
    for normalized, name in names:
        info = staging / f"{normalized}-{PLACEHOLDER_VERSION}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\n"
            f"Name: {name}\n"
            f"Version: {PLACEHOLDER_VERSION}\n"
            "Summary: Placeholder written by tt-serve: hides this distribution's vLLM plugins from a server "
            "that runs another backend.\n"
        )
    (staging / _COMPLETE).write_text("")
    try:
        os.rename(staging, root)
    except OSError:  # another tt-serve wrote it first, or a stale incomplete folder is in the way
        if not (root / _COMPLETE).is_file():
            shutil.rmtree(root, ignore_errors=True)
            os.rename(staging, root)
        else:
            shutil.rmtree(staging, ignore_errors=True)
    return root
