"""``tt-serve backends``: every catalog backend with what is known about it here, without importing it."""

from __future__ import annotations

from dataclasses import dataclass

from tt_serve.catalog import Backend, Catalog, HardwareNeed
from tt_serve.checks import find_distribution, plugin_entry_point
from tt_serve.hardware import HardwareReport
from tt_serve.trust import TrustPolicy, assess
from tt_serve.versions import InstalledVllm, required_vllm, version_in


@dataclass(frozen=True, eq=False)
class BackendStatus:
    backend: Backend
    installed: bool
    version: str | None
    registers_entry_point: bool
    trusted: bool
    trust_detail: str
    fingerprint: str | None
    vllm_range: str | None
    vllm_range_origin: str
    vllm_compatible: bool | None  # None: the range is unknown
    hardware_present: bool

    @property
    def hardware_ok(self) -> bool:
        return self.backend.hardware is HardwareNeed.NONE or self.hardware_present

    def as_dict(self) -> dict[str, object]:
        b = self.backend
        return {
            "name": b.name,
            "distribution": b.distribution,
            "entry_point": b.entry_point,
            "origin": b.origin,
            "description": b.description,
            "installed": self.installed,
            "version": self.version,
            "registers_entry_point": self.registers_entry_point,
            "trusted": self.trusted,
            "trust_detail": self.trust_detail,
            "record_sha256": self.fingerprint,
            "vllm_range": self.vllm_range,
            "vllm_range_origin": self.vllm_range_origin,
            "vllm_compatible": self.vllm_compatible,
            "hardware_needed": b.hardware.value,
            "hardware_present": self.hardware_present,
            "install": b.install,
            "env": dict(b.env),
        }


def inventory(
    catalog: Catalog, policy: TrustPolicy, hw: HardwareReport, vllm: InstalledVllm | None
) -> list[BackendStatus]:
    statuses = []
    for backend in catalog.values():
        dist = find_distribution(backend.distribution)
        requirement = required_vllm(backend.vllm, dist, backend.name)
        if requirement.specifier is None:
            compatible = None
        else:
            compatible = vllm is not None and version_in(vllm.version, requirement.specifier)
        if dist is None:
            allowed = policy.allows(backend.distribution)
            trusted, detail, fingerprint = allowed, "allowlisted" if allowed else "not on the allowlist", None
        else:
            verdict = assess(dist, policy)
            trusted, fingerprint = verdict.trusted, verdict.fingerprint
            detail = "trusted" if verdict.trusted else str(verdict.problem)
        statuses.append(
            BackendStatus(
                backend=backend,
                installed=dist is not None,
                version=dist.version if dist is not None else None,
                registers_entry_point=dist is not None and plugin_entry_point(backend, dist) is not None,
                trusted=trusted,
                trust_detail=detail,
                fingerprint=fingerprint,
                vllm_range=requirement.specifier,
                vllm_range_origin=requirement.origin,
                vllm_compatible=compatible,
                hardware_present=hw.present,
            )
        )
    return statuses


def format_table(statuses: list[BackendStatus], hw: HardwareReport, vllm: InstalledVllm | None) -> str:
    def yes(flag: bool | None) -> str:
        return "unknown" if flag is None else ("yes" if flag else "no")

    rows = [
        ("BACKEND", "DISTRIBUTION", "INSTALLED", "VERSION", "TRUSTED", "VLLM RANGE", "COMPATIBLE", "HARDWARE")
    ]
    for s in statuses:
        need = s.backend.hardware
        hardware = (
            "not needed" if need is HardwareNeed.NONE else ("present" if s.hardware_present else "absent")
        )
        rows.append(
            (
                s.backend.name,
                s.backend.distribution,
                yes(s.installed),
                s.version or "-",
                yes(s.trusted) if s.installed else ("allowlisted" if s.trusted else "no"),
                s.vllm_range or (f"({s.backend.distribution}'s pin)" if s.backend.vllm is None else "-"),
                yes(s.vllm_compatible),
                hardware,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    vllm_text = f"vLLM {vllm.version} ({vllm.distribution})" if vllm else "vLLM not installed"
    lines += ["", f"{vllm_text}; hardware: {hw.describe()}"]
    for s in statuses:
        if not s.installed:
            lines.append(f"  {s.backend.name}: install with {s.backend.install}")
        elif not s.trusted:
            lines.append(f"  {s.backend.name}: not trusted: {s.trust_detail}")
    return "\n".join(lines)
