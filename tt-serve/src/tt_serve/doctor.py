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
from pathlib import Path

from tt_serve import envs
from tt_serve.checks import CheckContext, Status, run_checks
from tt_serve.config import CONFIG_ENV, ServerConfig, load_config
from tt_serve.environments import ProbeReport
from tt_serve.errors import ExitCode, ServeError
from tt_serve.hardware import detect
from tt_serve.models import DEFAULT_ALIAS
from tt_serve.planning import check, resolution_for
from tt_serve.pycompat import StrEnum
from tt_serve.trust import TrustPolicy


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

    add(Level.OK, "tt-serve", f"Python {sys.version.split()[0]} at {sys.executable}")
    config = ServerConfig()
    if config_path:
        try:
            config = load_config(config_path)
            add(
                Level.OK,
                "config",
                f"{config.path}: {len(config.models)} model entries, {len(config.backends)} backend tables",
            )
        except ServeError as error:
            add(Level.PROBLEM, "config", error.message)
    else:
        add(Level.INFO, "config", f"no config file (pass --config FILE or set {CONFIG_ENV})")
    catalog = config.catalog()
    policy = TrustPolicy.build(config, catalog)
    hw = detect()
    add(
        Level.INFO,
        "hardware",
        ("Tenstorrent hardware present: " if hw.present else "no Tenstorrent hardware: ") + hw.describe(),
    )
    _variables(add)
    seen: set[str] = set()
    for backend in catalog.values():
        ctx = CheckContext(
            policy, env_overrides={**backend.env}, general_plugins=config.trust.general_plugins
        )
        checked = run_checks(backend, ctx, fail_fast=False)
        topic = f"backend {backend.name}"
        if checked.report is not None and checked.interpreter.path not in seen:
            seen.add(checked.interpreter.path)
            _environment(add, checked.report)
        failures = [r for r in checked.results if r.status is Status.FAILED]
        if not failures:
            add(Level.OK, topic, "; ".join(r.detail for r in checked.results if r.status is Status.OK))
            continue
        for failure in failures:
            if failure.code in (ExitCode.NOT_INSTALLED, ExitCode.HARDWARE_MISSING):
                add(Level.INFO, topic, f"not usable here: {failure.detail}")
            else:
                add(Level.WARNING, topic, failure.detail)
    _default_model(add, config, quick)
    return found


def _variables(add: Callable[[Level, str, str], None]) -> None:
    env = os.environ
    if env.get("VLLM_TARGET_DEVICE") == "cpu":
        add(
            Level.PROBLEM,
            "variables",
            "VLLM_TARGET_DEVICE=cpu makes vLLM skip every platform plugin; unset it",
        )
    if "VLLM_PLUGINS" in env:
        add(
            Level.INFO,
            "variables",
            f"VLLM_PLUGINS={env['VLLM_PLUGINS']!r}: vLLM loads only the plugins named "
            "there (it also drops vLLM's own general plugins unless listed)",
        )
    if envs.TT_VLLM_DEVICE.name in env:
        add(
            Level.INFO,
            "variables",
            f"{envs.TT_VLLM_DEVICE}={env[envs.TT_VLLM_DEVICE.name]!r} is set; tt-serve replaces it "
            "with each backend's own value",
        )


def _environment(add: Callable[[Level, str, str], None], report: ProbeReport) -> None:
    """One environment's plugins: what plain vLLM would do with them there."""
    where = f"environment {report.interpreter.path}"
    add(Level.OK, where, f"Python {report.python_version}, {report.vllm_text} ({report.interpreter.origin})")
    by_name: dict[str, list[str]] = defaultdict(list)
    for provider in report.platform_plugins:
        for name in provider["entry_points"]:
            by_name[name].append(f"{provider['distribution']} {provider['version']}")
    add(
        Level.OK if by_name else Level.INFO,
        f"{where}: platform plugins",
        ", ".join(f"{name} -> {' and '.join(ds)}" for name, ds in by_name.items()) or "none installed",
    )
    for name, dists in by_name.items():
        if len(dists) > 1:
            add(
                Level.WARNING,
                "plugin clash",
                f"entry point {name!r} is registered by {' and '.join(dists)} in {report.interpreter.path}: "
                f"plain vLLM would silently use the last one discovered. tt-serve shows vLLM only the "
                "chosen backend's distribution.",
            )
    general = [f"{p['distribution']} ({', '.join(p['entry_points'])})" for p in report.general_plugins]
    if general:
        add(
            Level.INFO,
            f"{where}: general plugins",
            f"{', '.join(general)}; only the chosen plugin's own, vLLM's and those in trust.general_plugins "
            "run inside tt-serve's servers",
        )


def _default_model(add: Callable[[Level, str, str], None], config: ServerConfig, quick: bool) -> None:
    try:
        resolution = resolution_for(DEFAULT_ALIAS, None, config)
        add(Level.OK, "resolution", f"{DEFAULT_ALIAS} -> {resolution.backend.name} ({resolution.reason})")
        resolution, checked = check(resolution, config, deep=not quick)
    except ServeError as error:  # the default path must work out of the box: any failure is a problem
        add(Level.PROBLEM, "default model", f"cannot resolve {DEFAULT_ALIAS}: {error.message}")
        return
    failure = checked.failure
    if failure is not None:
        add(Level.PROBLEM, f"serve {DEFAULT_ALIAS}", failure.detail)
        return
    add(
        Level.OK,
        f"serve {DEFAULT_ALIAS}",
        f"would start on backend {resolution.backend.name}" + ("" if quick else " (platform class imported)"),
    )
    folder = resolution.model.target
    if (Path(folder) / "config.json").is_file():
        add(Level.OK, "default model", f"{DEFAULT_ALIAS} is ready at {folder}")
    else:
        add(
            Level.INFO,
            "default model",
            f"{DEFAULT_ALIAS} will be converted from its GGUF on first use (into {folder})",
        )


def summary(found: list[Finding]) -> tuple[str, int]:
    problems = sum(f.level is Level.PROBLEM for f in found)
    warnings = sum(f.level is Level.WARNING for f in found)
    if problems:
        return f"{problems} problem(s) to fix, {warnings} warning(s).", int(ExitCode.PROBLEMS)
    return f"No problems found ({warnings} warning(s)).", int(ExitCode.OK)
