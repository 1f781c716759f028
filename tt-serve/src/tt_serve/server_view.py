"""The checks of what the server will see: the narrowing in place, then the plugin loaded as vLLM would.

A second probe of the backend's environment runs with tt-serve's placeholders first on PYTHONPATH: it
must find exactly the chosen platform plugin, and the plugin's entry point and platform class must load
from the files of the distribution the first probe verified (a copy earlier on the path is refused).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tt_serve import narrowing as narrowing_mod
from tt_serve.check_results import CheckContext, Checked, CheckResult, Status, failed, where
from tt_serve.environments import probe
from tt_serve.errors import ExitCode, ServeError
from tt_serve.trust import normalize


def single_plugin(checked: Checked, ctx: CheckContext, load: bool) -> CheckResult:
    """Plan the narrowing, then probe the server's environment with it in place (and load the plugin)."""
    backend, report = checked.backend, checked.report
    assert report is not None
    plan = checked.narrowing = narrowing_mod.plan(
        backend.distribution,
        narrowing_mod.providers(report.platform_plugins),
        narrowing_mod.providers(report.general_plugins),
        ctx.general_plugins,
    )
    env = ctx.server_environment()
    plan.apply(env, env)
    try:
        final = checked.final = probe(
            checked.interpreter,
            env,
            distribution=backend.distribution,
            entry_point=backend.entry_point,
            load=load,
            deep=ctx.deep,
            calls={key: list(value) for key, value in ctx.calls.items()},
        )
    except ServeError as error:
        return failed("single plugin", error.code, error.message)
    chosen = normalize(backend.distribution)
    visible = narrowing_mod.providers(final.platform_plugins)
    others = [p for p in visible if p.normalized != chosen]
    if others or not visible:
        shown = (
            ", ".join(f"{p.distribution} {p.version} at {p.location}" for p in others) or "no plugin at all"
        )
        return failed(
            "single plugin",
            ExitCode.ENVIRONMENT,
            f"Cannot make {backend.label} the only platform plugin: vLLM would still see {shown} in "
            f"{where(checked)}, even with tt-serve's placeholders first on PYTHONPATH.",
        )
    hidden = ", ".join(f"{p.distribution} {p.version} ({', '.join(p.entry_points)})" for p in plan.hidden)
    general = [p.distribution for p in narrowing_mod.providers(final.general_plugins)]
    return CheckResult(
        "single plugin",
        Status.OK,
        f"vLLM will see only {backend.distribution} ({backend.entry_point})"
        + (f"; hidden from it: {hidden}" if hidden else "")
        + (f"; general plugins that will run: {', '.join(general)}" if general else ""),
    )


def loads(checked: Checked, ctx: CheckContext) -> CheckResult:
    """What happened when the final probe loaded the plugin as vLLM would, and where its code came from."""
    backend = checked.backend
    assert checked.final is not None
    load: Mapping[str, Any] | None = checked.final.load
    assert load is not None
    entry = load["entry_point"]
    stage, error = load.get("stage"), load.get("error")
    fix = f"Fix or reinstall it ({backend.install})."
    if stage == "import":
        return failed(
            "plugin loads",
            ExitCode.PLUGIN_BROKEN,
            f"{backend.label} fails to import ({entry}): {error}. {fix}",
        )
    if not load.get("module_from_distribution"):
        return _shadowed(checked, load["module_file"])
    if stage == "register" and error:
        return failed(
            "plugin loads",
            ExitCode.PLUGIN_BROKEN,
            f"{backend.label} fails to initialise: its register() ({entry}) raised {error}. vLLM would "
            "swallow this and fall back to its own platform.",
        )
    if stage == "register":
        return failed(
            "plugin loads",
            ExitCode.PLUGIN_BROKEN,
            f"{backend.label} does not activate here: its register() ({entry}) returned None, so vLLM "
            "would fall back to its own platform. The plugin's log says why (run with "
            "VLLM_LOGGING_LEVEL=DEBUG).",
        )
    checked.platform = load.get("platform")
    if stage == "platform":
        return failed(
            "plugin loads",
            ExitCode.PLUGIN_BROKEN,
            f"{backend.label} names platform class {checked.platform}, which cannot be loaded: "
            f"{error}. {fix}",
        )
    if not load.get("platform_from_distribution"):
        return _shadowed(checked, load.get("platform_file"))
    imported = " (platform class imported)" if ctx.deep else ""
    return CheckResult("plugin loads", Status.OK, f"activates {checked.platform}{imported}")


def _shadowed(checked: Checked, path: str | None) -> CheckResult:
    backend = checked.backend
    dist = checked.report.distribution if checked.report else None
    where = dist["location"] if dist else "?"
    return failed(
        "plugin loads",
        ExitCode.UNTRUSTED,
        f"{backend.label}: the code vLLM would load comes from {path}, which is not part of the checked "
        f"distribution ({where}); something earlier on sys.path (PYTHONPATH?) shadows it. Remove the "
        "shadowing copy or fix PYTHONPATH.",
    )
