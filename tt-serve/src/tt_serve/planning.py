"""From MODEL to a launch plan: resolution, the checks in the backend's environment, the command.

Shared by ``tt-serve serve`` (and so by the gateway, which runs ``serve --dry-run --json``),
``resolve`` and ``doctor``, so that each answers exactly what a launch would do.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence

from tt_serve.catalog import OUR_DISTRIBUTION, Backend
from tt_serve.checks import CheckContext, Checked, run_checks
from tt_serve.config import ServerConfig
from tt_serve.environments import interpreter_for, probe
from tt_serve.errors import ServeError
from tt_serve.hardware import HardwareReport, detect
from tt_serve.launch import LaunchPlan, build_plan, python_command, server_env
from tt_serve.models import ALIAS_FOLDER_CALL, ALIAS_MODULE, inputs_question, locate_model, located
from tt_serve.resolve import Resolution, resolve
from tt_serve.trust import TrustPolicy, normalize

# The plugin validates its own TT options, in its own environment (the schema is the plugin's).
TT_OPTIONS_CALL = "tt_vllm_plugin.options:TTOptions.from_mapping"
ALIAS_ANSWER = "alias_folder"
INPUTS_ANSWER = "model_inputs"


def is_installed(backend: Backend) -> bool:
    """Whether the backend's environment holds its plugin distribution (False when it cannot be probed)."""
    try:
        report = probe(interpreter_for(backend), distribution=backend.distribution)
    except ServeError:
        return False
    return report.distribution is not None


def hardware_with_ttnn(config: ServerConfig) -> HardwareReport:
    """Device nodes, and whether ttnn is importable in the metal backend's environment."""
    hw = detect()
    try:
        report = probe(interpreter_for(config.catalog()["metal"]))
    except ServeError:
        return hw.with_ttnn(False)
    return hw.with_ttnn(report.ttnn_installed)


def resolution_for(model: str, cli_backend: str | None, config: ServerConfig) -> Resolution:
    return resolve(
        locate_model(model),
        cli_backend=cli_backend,
        config=config,
        catalog=config.catalog(),
        hardware=lambda: hardware_with_ttnn(config),
        is_installed=is_installed,
    )


def check(
    resolution: Resolution,
    config: ServerConfig,
    *,
    allow_untrusted: bool = False,
    deep: bool = False,
    fail_fast: bool = True,
    ask_inputs: bool = False,
) -> tuple[Resolution, Checked]:
    """Run the checks in the backend's environment; an alias's folder is located there at the same time,
    and with ``ask_inputs`` what the model takes (see :func:`model_inputs`)."""
    calls = {ALIAS_ANSWER: ALIAS_FOLDER_CALL} if resolution.model.alias else {}
    question = inputs_question(resolution.model) if ask_inputs and _ours(resolution.backend) else None
    if question is not None:
        calls[INPUTS_ANSWER] = question
    ctx = CheckContext(
        TrustPolicy.build(config, config.catalog()),
        allow_untrusted=allow_untrusted,
        env_overrides=server_env(resolution),
        deep=deep,
        general_plugins=config.trust.general_plugins,
        calls=calls,
    )
    checked = run_checks(resolution.backend, ctx, fail_fast=fail_fast)
    if checked.failure is None and checked.final is not None and resolution.model.alias:
        model = located(resolution.model, dict(checked.final.answer(ALIAS_ANSWER)))
        resolution = dataclasses.replace(resolution, model=model)
    return resolution, checked


def _ours(backend: Backend) -> bool:
    return normalize(backend.distribution) == normalize(OUR_DISTRIBUTION)


def model_inputs(resolution: Resolution, checked: Checked) -> dict[str, object]:
    """What the model takes, as the plugin's TT class declares it: ``{"inputs": ["text"] or ["text",
    "image"], "max_images_per_prompt": n or None, "architecture": ...}``; ``"inputs": None`` with
    ``"unknown"`` saying why when it cannot be told before the engine starts."""
    if not _ours(resolution.backend):
        why = f"the {resolution.backend.name} backend's plugin does not say what its models take"
        return {"inputs": None, "unknown": why}
    if inputs_question(resolution.model) is None:
        return {"inputs": None, "unknown": "the model is not in a local folder nor in the Hugging Face cache"}
    answer = dict(checked.final.answer(INPUTS_ANSWER)) if checked.final is not None else {}
    if "value" not in answer:
        return {"inputs": None, "unknown": f"the plugin could not tell: {answer.get('error', 'not asked')}"}
    return dict(answer["value"])


def locate_alias(resolution: Resolution) -> Resolution:
    """An alias's folder, asked of the backend's environment in one probe (no checks, nothing loaded):
    what ``resolve`` shows. Left unlocated when that environment cannot say (the checks will)."""
    if not resolution.model.alias:
        return resolution
    try:
        report = probe(
            interpreter_for(resolution.backend),
            {**os.environ, **server_env(resolution)},
            calls={ALIAS_ANSWER: list(ALIAS_FOLDER_CALL)},
        )
    except ServeError:
        return resolution
    answer = dict(report.answer(ALIAS_ANSWER))
    if "value" not in answer:
        return resolution
    return dataclasses.replace(resolution, model=located(resolution.model, answer))


def plan(
    resolution: Resolution, config: ServerConfig, checked: Checked, vllm_args: Sequence[str]
) -> LaunchPlan:
    def check_tt(tt: Mapping[str, object], source: str) -> str | None:
        if not _ours(checked.backend):
            return None  # another plugin's TT options are its own business
        report = probe(checked.interpreter, calls={"tt": [TT_OPTIONS_CALL, [dict(tt), source]]})
        answer = report.answer("tt")
        return str(answer["error"]) if "error" in answer else None

    return build_plan(resolution, config, vllm_args, checked, check_tt)


def alias_command(checked: Checked) -> list[str]:
    """The command that prepares the embedded model in the backend's environment."""
    assert checked.final is not None
    return python_command(checked.interpreter.path, checked.final.python_tuple, ALIAS_MODULE)
