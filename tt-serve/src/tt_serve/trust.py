"""Which plugin distributions may be loaded into the server.

Threat model. A vLLM platform plugin is arbitrary code that runs inside the server with the server's
rights and sees every prompt. vLLM loads whatever distribution registers an entry point, so a
dependency-confusion or typo-squatted package that registers ``tt`` would be loaded as silently as the
real one. tt-serve therefore only launches a plugin whose distribution is on an allowlist (by default
the built-in catalog's: tt-vllm-plugin and vllm_tt), optionally pinned to a version range and to a
SHA-256 fingerprint of its installed RECORD; it also refuses a plugin whose installed files no longer
match their RECORD hashes (edited after installation). ``--allow-untrusted`` overrides, loudly. The
hashing runs inside the plugin's own environment (``probe.py``), on the files the server will load.
Out of scope: an attacker who can edit tt-serve itself, the config file or the Python environment at
large (vLLM, torch, the plugin's dependencies are not hashed); editable installs, whose RECORD does
not cover the source tree; a malicious release published under a trusted name and version unless its
fingerprint is pinned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from tt_serve.catalog import Catalog
from tt_serve.config import Pin, ServerConfig


def normalize(name: str) -> str:
    """PEP 503 normalisation, with the underscores importlib.metadata uses."""
    return re.sub(r"[-_.]+", "_", name).lower()


@dataclass(frozen=True, eq=False)
class TrustPolicy:
    allowed: Mapping[str, Pin | None]  # normalised distribution name -> its pin, if any
    origin: str  # where the allowlist comes from, for messages

    @classmethod
    def build(cls, config: ServerConfig, catalog: Catalog) -> TrustPolicy:
        if config.trust.allow is None:
            names: tuple[str, ...] = tuple(sorted(catalog.builtin_distributions))
            origin = "the default allowlist: the built-in catalog's distributions"
        else:
            names = config.trust.allow
            origin = f"trust.allow in {config.path}"
        allowed: dict[str, Pin | None] = {normalize(n): None for n in names}
        for dist, pin in config.trust.pins.items():
            allowed[normalize(dist)] = pin  # a pinned distribution is allowed
        return cls(allowed, origin)

    def allows(self, distribution: str) -> bool:
        return normalize(distribution) in self.allowed


@dataclass(frozen=True)
class TrustVerdict:
    trusted: bool
    problem: str | None  # why not, when not trusted
    fingerprint: str | None
    notes: tuple[str, ...] = ()


def assess(dist: Mapping[str, Any], policy: TrustPolicy) -> TrustVerdict:
    """The verdict on a distribution as the probe described it (``verify``: its RECORD was checked
    inside its own environment: ``record_fingerprint`` and ``modified``)."""
    name = str(dist["name"])
    version = str(dist["version"])
    if not policy.allows(name):
        return TrustVerdict(False, f"{name} is not on the trusted allowlist ({policy.origin})", None)
    pin = policy.allowed[normalize(name)]
    notes = []
    if dist.get("editable"):
        notes.append("editable install: RECORD does not cover its source files")
    if pin is not None and pin.version is not None:
        try:
            matches = SpecifierSet(pin.version).contains(Version(version), prereleases=True)
        except InvalidVersion:
            matches = False
        if not matches:
            return TrustVerdict(
                False, f"{name} {version} does not match the pinned version {pin.version}", None
            )
    changed = list(dist["modified"])
    if changed:
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        return TrustVerdict(
            False, f"{name} {version} was modified after installation: {shown} differ from its RECORD", None
        )
    fingerprint = dist["record_fingerprint"]
    if pin is not None and pin.record_sha256 is not None:
        if fingerprint is None:
            return TrustVerdict(
                False, f"{name} {version} has no RECORD, so its pinned hash cannot be verified", None
            )
        if fingerprint != pin.record_sha256:
            return TrustVerdict(
                False,
                f"{name} {version} has RECORD fingerprint {fingerprint}, not the pinned {pin.record_sha256}",
                fingerprint,
            )
    return TrustVerdict(True, None, fingerprint, tuple(notes))
