"""What the checks produce: each check's result, the context they run in, and what they found."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tt_serve import narrowing as narrowing_mod
from tt_serve.catalog import Backend
from tt_serve.environments import Interpreter, ProbeReport
from tt_serve.errors import ExitCode, ServeError
from tt_serve.hardware import HardwareReport, detect
from tt_serve.pycompat import StrEnum
from tt_serve.trust import TrustPolicy, TrustVerdict
from tt_serve.versions import VllmRequirement


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"
    FAILED = "failed"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str
    code: ExitCode | None = None  # set when failed


@dataclass(eq=False)
class CheckContext:
    policy: TrustPolicy
    allow_untrusted: bool = False
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    env_overrides: Mapping[str, str] = field(default_factory=dict)  # what the server will run under
    hardware: Callable[[], HardwareReport] = detect
    deep: bool = False  # also import the platform class (imports vLLM: seconds); for doctor
    general_plugins: tuple[str, ...] = ()  # trust.general_plugins: allowed to run inside the server
    # Extra questions for the final probe (e.g. where the embedded model lives), answered in its report.
    calls: Mapping[str, tuple[str, list[Any]]] = field(default_factory=dict)

    def server_environment(self) -> dict[str, str]:
        return {**self.environ, **self.env_overrides}


@dataclass(eq=False)
class Checked:
    """What the checks found, for the launcher and for reports."""

    backend: Backend
    interpreter: Interpreter
    results: list[CheckResult] = field(default_factory=list)
    report: ProbeReport | None = None  # the first probe: what is installed
    final: ProbeReport | None = None  # the second: what the server will see, the plugin loaded
    verdict: TrustVerdict | None = None
    requirement: VllmRequirement | None = None
    narrowing: narrowing_mod.Narrowing | None = None
    platform: str | None = None  # the platform class the plugin's register() names

    @property
    def failure(self) -> CheckResult | None:
        return next((r for r in self.results if r.status is Status.FAILED), None)

    def raise_for_failure(self) -> None:
        failure = self.failure
        if failure is not None:
            assert failure.code is not None
            raise ServeError(failure.detail, failure.code)


def failed(name: str, code: ExitCode, detail: str) -> CheckResult:
    return CheckResult(name, Status.FAILED, detail, code)


def where(checked: Checked) -> str:
    interpreter = checked.interpreter
    return f"the Python environment of {interpreter.path} ({interpreter.origin})"
