"""``tt-serve backends``: every catalog backend with what its own Python environment holds.

Each backend is probed in its environment (its interpreter, see ``environments.py``): the interpreter
and its Python version, the vLLM installed there, whether the plugin is installed, trusted and
unmodified, and whether that vLLM is in the plugin's range. Nothing of a plugin is imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tt_serve.catalog import Backend, Catalog, HardwareNeed
from tt_serve.checks import backend_requirement, range_question
from tt_serve.environments import Interpreter, ProbeReport, interpreter_for, probe
from tt_serve.errors import ServeError
from tt_serve.hardware import HardwareReport, detect
from tt_serve.trust import TrustPolicy, assess
from tt_serve.versions import version_in


@dataclass(frozen=True, eq=False)
class BackendStatus:
    backend: Backend
    interpreter: Interpreter
    report: ProbeReport | None  # None: the environment could not be probed (problem says why)
    problem: str | None
    trusted: bool
    trust_detail: str
    fingerprint: str | None
    vllm_range: str | None
    vllm_range_origin: str
    vllm_compatible: bool | None  # None: the range or the vLLM is unknown
    hardware: HardwareReport

    @property
    def dist(self) -> Mapping[str, Any] | None:
        return self.report.distribution if self.report is not None else None

    @property
    def installed(self) -> bool:
        return self.dist is not None

    @property
    def vllm(self) -> Mapping[str, Any] | None:
        return self.report.vllm if self.report is not None else None

    def as_dict(self) -> dict[str, object]:
        b, dist, vllm = self.backend, self.dist, self.vllm
        return {
            "name": b.name,
            "distribution": b.distribution,
            "entry_point": b.entry_point,
            "origin": b.origin,
            "description": b.description,
            "python": self.interpreter.path,
            "python_origin": self.interpreter.origin,
            "python_version": self.report.python_version if self.report is not None else None,
            "environment_problem": self.problem,
            "vllm": dict(vllm) if vllm else None,
            "installed": self.installed,
            "version": dist["version"] if dist else None,
            "registers_entry_point": bool(dist and dist["entry_point"]),
            "general_plugins": list(dist["general_plugins"]) if dist else [],
            "trusted": self.trusted,
            "trust_detail": self.trust_detail,
            "record_sha256": self.fingerprint,
            "vllm_range": self.vllm_range,
            "vllm_range_origin": self.vllm_range_origin,
            "vllm_compatible": self.vllm_compatible,
            "hardware_needed": b.hardware.value,
            "hardware_present": self.hardware.present,
            "ttnn_installed": self.hardware.ttnn_installed,
            "exclusive_device": b.exclusive_device,
            "install": b.install,
            "env": dict(b.env),
        }


def status_of(backend: Backend, policy: TrustPolicy, hw: HardwareReport) -> BackendStatus:
    interpreter = interpreter_for(backend)
    try:
        report: ProbeReport | None = probe(
            interpreter,
            distribution=backend.distribution,
            entry_point=backend.entry_point,
            verify=True,
            attributes=range_question(backend),
        )
        problem = None
    except ServeError as error:
        report, problem = None, error.message
    dist = report.distribution if report is not None else None
    if report is None:
        requirement_spec, requirement_origin = backend.vllm, "unknown: the environment could not be probed"
    else:
        requirement = backend_requirement(backend, report)
        requirement_spec, requirement_origin = requirement.specifier, requirement.origin
    vllm = report.vllm if report is not None else None
    compatible = None
    if requirement_spec is not None and vllm is not None:
        compatible = version_in(vllm["version"], requirement_spec)
    if dist is None:
        allowed = policy.allows(backend.distribution)
        trusted, detail, fingerprint = allowed, "allowlisted" if allowed else "not on the allowlist", None
    else:
        verdict = assess(dist, policy)
        trusted, fingerprint = verdict.trusted, verdict.fingerprint
        detail = "trusted" if verdict.trusted else str(verdict.problem)
    ttnn = report.ttnn_installed if report is not None else False
    return BackendStatus(
        backend=backend,
        interpreter=interpreter,
        report=report,
        problem=problem,
        trusted=trusted,
        trust_detail=detail,
        fingerprint=fingerprint,
        vllm_range=requirement_spec,
        vllm_range_origin=requirement_origin,
        vllm_compatible=compatible,
        hardware=hw.with_ttnn(ttnn),
    )


def inventory(catalog: Catalog, policy: TrustPolicy) -> tuple[list[BackendStatus], HardwareReport]:
    hw = detect()
    return [status_of(backend, policy, hw) for backend in catalog.values()], hw


def format_table(statuses: list[BackendStatus], hw: HardwareReport) -> str:
    def yes(flag: bool | None) -> str:
        return "unknown" if flag is None else ("yes" if flag else "no")

    rows = [
        (
            "BACKEND",
            "DISTRIBUTION",
            "INSTALLED",
            "VERSION",
            "TRUSTED",
            "PYTHON",
            "VLLM",
            "VLLM RANGE",
            "COMPATIBLE",
            "HARDWARE",
        )
    ]
    for s in statuses:
        need = s.backend.hardware
        hardware = (
            "not needed" if need is HardwareNeed.NONE else ("present" if s.hardware.present else "absent")
        )
        dist = s.dist
        rows.append(
            (
                s.backend.name,
                s.backend.distribution,
                yes(s.installed),
                dist["version"] if dist else "-",
                yes(s.trusted) if s.installed else ("allowlisted" if s.trusted else "no"),
                s.report.python_version if s.report is not None else "?",
                s.vllm["version"] if s.vllm else "-",
                s.vllm_range or (f"({s.backend.distribution}'s pin)" if s.backend.vllm is None else "-"),
                yes(s.vllm_compatible),
                hardware,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines += ["", f"hardware: {hw.describe()}", "environments:"]
    for s in statuses:
        lines.append(f"  {s.backend.name}: {s.interpreter.path} ({s.interpreter.origin})")
        if s.problem:
            lines.append(f"    cannot be probed: {s.problem}")
        elif not s.installed:
            lines.append(f"    not installed there: install with {s.backend.install}")
        elif not s.trusted:
            lines.append(f"    not trusted: {s.trust_detail}")
    return "\n".join(lines)
