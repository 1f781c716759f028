"""A backend's Python environment: which interpreter, and what the probe found inside it.

A backend is a plugin in a Python environment of its own (a Metal and a Forge plugin need different
vLLMs). Its interpreter comes from, in order: ``[backends.NAME] python`` in the config file; the
catalog's default for the backend (tt-metal's ``$TT_METAL_HOME/python_env`` for ``metal``), when that
interpreter exists; tt-serve's own interpreter. Everything tt-serve learns about the environment it
learns by running ``probe.py`` with that interpreter, under the variables the server will have and
with the working directory off ``sys.path``, exactly as the server will run.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tt_serve.catalog import Backend
from tt_serve.errors import ExitCode, ServeError

PROBE_SOURCE_FILE = Path(__file__).with_name("probe.py")
PROBE_MARKER = "@@tt-serve-probe@@"
PROBE_TIMEOUT_S = 120
# Where tt-metal's set-up puts its Python environment (tt-metal's create_venv.sh).
TT_METAL_PYTHON = "$TT_METAL_HOME/python_env/bin/python"
_CATALOG_PYTHON = {"metal": TT_METAL_PYTHON}


@dataclass(frozen=True)
class Interpreter:
    path: str
    origin: str  # where the choice comes from, for messages and `tt-serve backends`

    @property
    def exists(self) -> bool:
        return os.access(self.path, os.X_OK) and Path(self.path).is_file()


def interpreter_for(backend: Backend) -> Interpreter:
    if backend.python:
        return Interpreter(backend.python, f"backends.{backend.name}.python in the config file")
    default = _CATALOG_PYTHON.get(backend.name)
    if default and "$" not in os.path.expandvars(default):
        path = os.path.expandvars(default)
        if Path(path).is_file():
            return Interpreter(path, f"the catalog's default for {backend.name} ({default})")
    return Interpreter(sys.executable, "tt-serve's own interpreter (no python configured for this backend)")


def safe_path_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The environment with the working directory kept off sys.path in every Python process (3.11+)."""
    return {**env, "PYTHONSAFEPATH": "1"}


@dataclass(frozen=True, eq=False)
class ProbeReport:
    """What probe.py printed, with accessors for what the checks read."""

    interpreter: Interpreter
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def python_version(self) -> str:
        return str(self.data["python"]["version"])

    @property
    def python_tuple(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.python_version.split(".")[:2])

    @property
    def vllm(self) -> Mapping[str, Any] | None:
        return self.data.get("vllm")

    @property
    def vllm_text(self) -> str:
        vllm = self.vllm
        if vllm is None:
            return "vLLM not installed"
        compiled = "" if vllm["compiled"] else ", no compiled ops (VLLM_TARGET_DEVICE=empty build)"
        return f"vLLM {vllm['version']} ({vllm['distribution']}{compiled})"

    @property
    def ttnn_installed(self) -> bool:
        return bool(self.data.get("ttnn_installed"))

    @property
    def distribution(self) -> Mapping[str, Any] | None:
        return self.data.get("distribution")

    @property
    def platform_plugins(self) -> list[Mapping[str, Any]]:
        return list(self.data.get("platform_plugins", []))

    @property
    def general_plugins(self) -> list[Mapping[str, Any]]:
        return list(self.data.get("general_plugins", []))

    @property
    def load(self) -> Mapping[str, Any] | None:
        return self.data.get("load")

    def answer(self, key: str) -> Mapping[str, Any]:
        return self.data.get("answers", {}).get(key, {"error": "not asked"})

    def summary(self) -> dict[str, object]:
        return {
            "python": self.interpreter.path,
            "python_origin": self.interpreter.origin,
            "python_version": self.python_version,
            "vllm": dict(self.vllm) if self.vllm else None,
        }


def probe(interpreter: Interpreter, env: Mapping[str, str] | None = None, **request: Any) -> ProbeReport:
    """Run probe.py with ``interpreter`` under ``env`` (default: this process's); raise ServeError when
    the interpreter is missing or the probe cannot run."""
    environ = dict(os.environ if env is None else env)
    key = json.dumps([interpreter.path, sorted(environ.items()), request], sort_keys=True, default=str)
    return _probe_cached(interpreter, key)


@functools.lru_cache(maxsize=64)
def _probe_cached(interpreter: Interpreter, key: str) -> ProbeReport:
    _, items, request = json.loads(key)
    if not interpreter.exists:
        raise ServeError(
            f"The Python interpreter {interpreter.path} (from {interpreter.origin}) does not exist or is not "
            "executable. Point it at the python of the environment that holds the plugin.",
            ExitCode.NOT_INSTALLED,
        )
    command = [interpreter.path, "-c", PROBE_SOURCE_FILE.read_text(), json.dumps(request)]
    try:
        done = subprocess.run(
            command,
            env=safe_path_environment(dict(items)),
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ServeError(
            f"Probing the environment of {interpreter.path} took over {PROBE_TIMEOUT_S} s.",
            ExitCode.ENVIRONMENT,
        ) from None
    line = next((x for x in reversed(done.stdout.splitlines()) if x.startswith(PROBE_MARKER)), None)
    if line is None:
        raise ServeError(
            f"Could not probe the Python environment of {interpreter.path} (exit status {done.returncode}): "
            f"{(done.stderr or done.stdout).strip()[-1500:]}",
            ExitCode.ENVIRONMENT,
        )
    data = json.loads(line[len(PROBE_MARKER) :])
    if "probe_error" in data:
        raise ServeError(
            f"Probing the Python environment of {interpreter.path} failed: {data['probe_error']}",
            ExitCode.ENVIRONMENT,
        )
    return ProbeReport(interpreter, data)
