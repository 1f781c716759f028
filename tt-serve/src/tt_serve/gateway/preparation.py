"""Preparing an engine: ``tt-serve serve MODEL --dry-run --json`` in a child process (the very resolution,
checks and plan of ``tt-serve serve``, in a process of its own because the checks import the plugin and
change ``os.environ`` while they probe it), and the embedded model's folder, converted once by the
backend's own environment. Used for the gateway's engines and for the cluster's replicas alike.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tt_serve.gateway.engine import EngineError
from tt_serve.gateway.environment import EngineEnvRule
from tt_serve.gateway.secrets import Redactor
from tt_serve.gateway.settings import ModelSpec, reserved_arg_problem, tt_additional_config

PREPARE_TIMEOUT_S = 180


@dataclass(frozen=True)
class Prepared:
    backend: str
    reason: str
    model_target: str
    argv: tuple[str, ...]
    env_changes: Mapping[str, str]
    warnings: tuple[str, ...]
    prepare_model: tuple[str, ...] | None  # prepares the embedded model in the backend's environment
    exclusive_device: bool  # the backend's engines hold a device no second engine can open
    needs_card: bool = False  # the backend needs Tenstorrent hardware: the gateway gives it card(s)
    # What the model takes, as the plugin declares it (planning.model_inputs): {"inputs": ["text",
    # "image"], ...}, or {"inputs": None, "unknown": why}.
    inputs: Mapping[str, Any] = field(default_factory=lambda: {"inputs": None, "unknown": "not asked"})


def engine_args(spec: ModelSpec) -> list[str]:
    """The vLLM arguments of the engine: the model's own, its TT options, then where it listens
    (``--port`` is added when the process starts, so the port is as fresh as it can be)."""
    problem = reserved_arg_problem(spec.engine_args)
    if problem:
        raise EngineError(problem, 422)
    try:
        args = tt_additional_config(spec.engine_args, spec.tt)
    except ValueError as error:
        raise EngineError(str(error), 422) from None
    return [*args, "--host", "127.0.0.1", "--served-model-name", spec.name]


async def prepare(
    spec: ModelSpec, config_path: Path | None, env_rule: EngineEnvRule, redactor: Redactor
) -> Prepared:
    """Resolve and check the backend, build the command: ``tt-serve serve --dry-run --json``."""
    command = [sys.executable, "-m", "tt_serve.cli", "serve", spec.model, "--dry-run", "--json"]
    command.append("--model-inputs")  # what the model takes, shown in its entry (images or not)
    if config_path is not None:
        command += ["--config", str(config_path)]
    if spec.backend:
        command += ["--backend", spec.backend]
    command += ["--", *engine_args(spec)]
    # The checks import and probe the plugin: they get the engine's environment, not the gateway's.
    env = {**env_rule.apply(os.environ), **spec.env}
    process = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), PREPARE_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise EngineError(f"tt-serve's resolution and checks took over {PREPARE_TIMEOUT_S} s", 422) from None
    except asyncio.CancelledError:  # the model was removed meanwhile: leave no child behind
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        text = err.decode(errors="replace").strip()
        message = text.rpartition("tt-serve: error: ")[2] if "tt-serve: error: " in text else text
        raise EngineError(
            redactor.text(message or f"tt-serve serve --dry-run exited with {process.returncode}"), 422
        )
    data = json.loads(out)
    warnings = tuple(redactor.text(c["detail"]) for c in data["checks"] if c["status"] == "warning")
    return Prepared(
        backend=data["resolution"]["backend"],
        reason=data["resolution"]["reason"],
        model_target=data["resolution"]["model_target"],
        argv=tuple(data["command"]),
        env_changes=dict(data["env"]),
        warnings=warnings,
        prepare_model=tuple(data["prepare_model"]) if data.get("prepare_model") else None,
        exclusive_device=bool(data["resolution"]["exclusive_device"]),
        needs_card=data["resolution"].get("hardware") == "tenstorrent",
        inputs=_shown_inputs(data.get("model_inputs"), redactor),
    )


def _shown_inputs(inputs: Mapping[str, Any] | None, redactor: Redactor) -> dict[str, Any]:
    """What the model takes, for the read API: why it is unknown is the plugin's text, redacted as the
    checks' warnings are."""
    if not inputs:
        return {"inputs": None, "unknown": "not asked"}
    shown = dict(inputs)
    if isinstance(shown.get("unknown"), str):
        shown["unknown"] = redactor.text(shown["unknown"])
    return shown


async def prepare_model_folder(prepared: Prepared, env: Mapping[str, str]) -> None:
    """The embedded model's alias needs its folder converted once (as ``tt-serve serve`` does first), by
    the backend's own environment (the command comes from ``serve --dry-run --json``); ``env``: the
    engine's environment (the conversion is the plugin's code)."""
    if prepared.prepare_model is None or (Path(prepared.model_target) / "config.json").is_file():
        return
    process = await asyncio.create_subprocess_exec(
        *prepared.prepare_model,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
    )
    _, err = await process.communicate()
    if process.returncode != 0:
        raise EngineError(f"preparing the embedded model failed: {err.decode(errors='replace')[-1000:]}", 502)
