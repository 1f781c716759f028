"""Which plugin distributions may be loaded into the server.

Threat model. A vLLM platform plugin is arbitrary code that runs inside the server with the server's
rights and sees every prompt. vLLM loads whatever distribution registers an entry point, so a
dependency-confusion or typo-squatted package that registers ``tt`` would be loaded as silently as the
real one. tt-serve therefore only launches a plugin whose distribution is on an allowlist (by default
the built-in catalog's: tt-vllm-plugin and vllm_tt), optionally pinned to a version range and to a
SHA-256 fingerprint of its installed RECORD; it also refuses a plugin whose installed files no longer
match their RECORD hashes (edited after installation). ``--allow-untrusted`` overrides, loudly.
Out of scope: an attacker who can edit tt-serve itself, the config file or the Python environment at
large (vLLM, torch, the plugin's dependencies are not hashed); editable installs, whose RECORD does
not cover the source tree; a malicious release published under a trusted name and version unless its
fingerprint is pinned.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from tt_serve.catalog import Catalog
from tt_serve.config import Pin, ServerConfig

# Written by the installer and different per install, so they are left out of the fingerprint.
_INSTALL_SPECIFIC = {"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"}


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


def _record_rows(dist: importlib.metadata.Distribution) -> list[tuple[str, str]] | None:
    text = dist.read_text("RECORD")
    if text is None:
        return None
    return [(row[0], row[1]) for row in csv.reader(io.StringIO(text)) if len(row) >= 2 and row[1]]


def record_fingerprint(dist: importlib.metadata.Distribution) -> str | None:
    """SHA-256 over the RECORD's (path, hash) pairs: the distribution's files, as installed.

    Files outside the install directory (console scripts, whose shebang names the venv) and the
    installer's own records are left out, so one wheel gives the same fingerprint in every venv.
    """
    rows = _record_rows(dist)
    if rows is None:
        return None
    kept = sorted(
        f"{path},{digest}"
        for path, digest in rows
        if not path.startswith("..") and path.rsplit("/", 1)[-1] not in _INSTALL_SPECIFIC
    )
    return hashlib.sha256("\n".join(kept).encode()).hexdigest()


def modified_files(dist: importlib.metadata.Distribution) -> list[str]:
    """Installed files whose content no longer matches the hash in RECORD (or that are gone).

    Only files inside the install directory are checked, like the fingerprint: console scripts live
    outside it, and ``pip install --target`` records their paths wrongly.
    """
    changed = []
    for file in dist.files or []:
        if file.hash is None or str(file).startswith(".."):
            continue
        path = file.locate()
        try:
            digest = hashlib.new(file.hash.mode)
            with open(path, "rb") as handle:
                for block in iter(lambda h=handle: h.read(1 << 20), b""):
                    digest.update(block)
        except (OSError, ValueError):
            changed.append(f"{file} (missing)")
            continue
        if base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode() != file.hash.value:
            changed.append(str(file))
    return changed


def is_editable(dist: importlib.metadata.Distribution) -> bool:
    try:
        info = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        return False
    return bool(info.get("dir_info", {}).get("editable"))


def assess(dist: importlib.metadata.Distribution, policy: TrustPolicy) -> TrustVerdict:
    name = dist.metadata["Name"]
    version = dist.version
    if not policy.allows(name):
        return TrustVerdict(False, f"{name} is not on the trusted allowlist ({policy.origin})", None)
    pin = policy.allowed[normalize(name)]
    notes = []
    if is_editable(dist):
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
    changed = modified_files(dist)
    if changed:
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        return TrustVerdict(
            False, f"{name} {version} was modified after installation: {shown} differ from its RECORD", None
        )
    fingerprint = record_fingerprint(dist)
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
