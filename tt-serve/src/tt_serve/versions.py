"""Which vLLM range a backend supports (the installed version comes from ``tt_vllm_plugin.version_check``)."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement

from tt_vllm_plugin.version_check import VLLM_DISTRIBUTIONS, InstalledVllm, installed_vllm, version_in

__all__ = ["InstalledVllm", "VllmRequirement", "installed_vllm", "required_vllm", "version_in"]


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
