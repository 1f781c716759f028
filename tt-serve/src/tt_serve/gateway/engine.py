"""One engine: a vLLM OpenAI server process for one gateway model, started through tt-serve's launch path.

Preparation runs ``tt-serve serve MODEL --dry-run --json`` in a child process: the very resolution,
checks (trust, versions, exactly-one-plugin narrowing) and ``build_plan`` that ``tt-serve serve`` runs,
and in a process of its own because the checks import the plugin and change ``os.environ`` while they
probe it, which must not happen inside a gateway that is serving traffic. The gateway then runs the
plan's command with the plan's environment, on 127.0.0.1 and a free port, and waits for ``/health``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from tt_serve import envs
from tt_serve.gateway.settings import ModelSpec, reserved_arg_problem, tt_additional_config
from tt_serve.launch import _die_with_parent

State = Literal["starting", "serving", "draining", "stopped", "failed"]
LOG_TAIL_CHARS = 3000
PREPARE_TIMEOUT_S = 180


class EngineError(Exception):
    """An engine could not be prepared (status 422) or started (502); ``message`` says why."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Prepared:
    backend: str
    reason: str
    model_target: str
    argv: tuple[str, ...]
    env_changes: Mapping[str, str]
    warnings: tuple[str, ...]
    prepare_model: tuple[str, ...] | None  # prepares the embedded model in the backend's environment


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def engine_args(spec: ModelSpec, port: int) -> list[str]:
    """The vLLM arguments of the engine: the model's own, its TT options, then where it listens."""
    problem = reserved_arg_problem(spec.engine_args)
    if problem:
        raise EngineError(problem, 422)
    try:
        args = tt_additional_config(spec.engine_args, spec.tt)
    except ValueError as error:
        raise EngineError(str(error), 422) from None
    return [*args, "--host", "127.0.0.1", "--port", str(port), "--served-model-name", spec.name]


async def prepare(spec: ModelSpec, port: int, config_path: Path | None) -> Prepared:
    """Resolve and check the backend, build the command: ``tt-serve serve --dry-run --json``."""
    command = [sys.executable, "-m", "tt_serve.cli", "serve", spec.model, "--dry-run", "--json"]
    if config_path is not None:
        command += ["--config", str(config_path)]
    if spec.backend:
        command += ["--backend", spec.backend]
    command += ["--", *engine_args(spec, port)]
    env = {k: v for k, v in os.environ.items() if k != envs.TT_SERVE_CONFIG.name}
    env.update(spec.env)  # the checks probe the plugin under the variables the server will have
    process = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), PREPARE_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise EngineError(f"tt-serve's resolution and checks took over {PREPARE_TIMEOUT_S} s", 422) from None
    if process.returncode != 0:
        text = err.decode(errors="replace").strip()
        message = text.rpartition("tt-serve: error: ")[2] if "tt-serve: error: " in text else text
        raise EngineError(message or f"tt-serve serve --dry-run exited with {process.returncode}", 422)
    data = json.loads(out)
    warnings = tuple(c["detail"] for c in data["checks"] if c["status"] == "warning")
    return Prepared(
        backend=data["resolution"]["backend"],
        reason=data["resolution"]["reason"],
        model_target=data["resolution"]["model_target"],
        argv=tuple(data["command"]),
        env_changes=dict(data["env"]),
        warnings=warnings,
        prepare_model=tuple(data["prepare_model"]) if data.get("prepare_model") else None,
    )


async def prepare_model_folder(prepared: Prepared) -> None:
    """The embedded model's alias needs its folder converted once (as ``tt-serve serve`` does first), by
    the backend's own environment (the command comes from ``serve --dry-run --json``)."""
    if prepared.prepare_model is None or (Path(prepared.model_target) / "config.json").is_file():
        return
    process = await asyncio.create_subprocess_exec(
        *prepared.prepare_model, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _, err = await process.communicate()
    if process.returncode != 0:
        raise EngineError(f"preparing the embedded model failed: {err.decode(errors='replace')[-1000:]}", 502)


class Lease:
    """One in-flight request on an engine; released once (by the stream's end or the response's close)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._held = True
        engine.inflight += 1

    def release(self) -> None:
        if self._held:
            self._held = False
            self._engine.inflight -= 1


class Engine:
    def __init__(self, spec: ModelSpec, generation: int, log_dir: Path) -> None:
        self.spec = spec
        self.generation = generation
        self.port = free_port()
        self.log_path = log_dir / f"{_file_name(spec.name)}-g{generation}.log"
        self.state: State = "starting"
        self.healthy = False
        self.backend: str | None = spec.backend
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = time.time()
        self.last_error: str | None = None
        self.inflight = 0
        self.last_snapshot: object | None = None  # the metrics sampler's previous scrape of THIS engine

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def acquire(self) -> Lease:
        return Lease(self)

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - chars))
                return log.read().decode(errors="replace")
        except OSError:
            return "(no log)"

    def fail(self, message: str) -> EngineError:
        self.state, self.healthy, self.last_error = "failed", False, message
        return EngineError(message, 502)

    async def start(self, prepared: Prepared, timeout: float, client: httpx.AsyncClient) -> None:
        """Run the plan's command and return once ``/health`` answers 200; raise EngineError otherwise."""
        env = {**os.environ, **self.spec.env, **prepared.env_changes}
        with open(self.log_path, "ab") as log:
            # Started from the event loop's thread: PR_SET_PDEATHSIG fires when the starting THREAD ends.
            # Its own process group, so that stop() can sweep the engine core with it.
            self.process = subprocess.Popen(
                prepared.argv,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,  # also its own process group
            )
        self.started_at = time.time()
        deadline = time.monotonic() + timeout
        while True:
            status = self.process.poll()
            if status is not None:
                raise self.fail(
                    f"the engine exited with status {status} before it was healthy; the end of its log "
                    f"({self.log_path}):\n{self.log_tail()}"
                )
            try:
                if (await client.get(f"{self.base_url}/health", timeout=5)).status_code == 200:
                    self.state, self.healthy = "serving", True
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                await self.stop()
                raise self.fail(
                    f"the engine was not healthy after {timeout:.0f} s (start_timeout_s); the end of its log "
                    f"({self.log_path}):\n{self.log_tail()}"
                )
            await asyncio.sleep(1)

    async def drain(self, timeout: float) -> bool:
        """Wait (bounded) until no request is in flight on this engine; True if it drained."""
        self.state, self.healthy = "draining", False
        deadline = time.monotonic() + timeout
        while self.inflight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return self.inflight == 0

    async def stop(self, timeout: float = 30) -> None:
        """SIGTERM (vLLM shuts its engine core down), SIGKILL after ``timeout``; then sweep the group."""
        process = self.process
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                deadline = time.monotonic() + timeout
                while process.poll() is None and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
            await _kill_group(process)
        if self.state != "failed":
            self.state = "stopped"
        self.healthy = False

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.spec.name,
            "model": self.spec.model,
            "backend": self.backend,
            "engine_args": list(self.spec.engine_args),
            "tt": dict(self.spec.tt),
            "state": self.state,
            "healthy": self.healthy,
            "port": self.port,
            "pid": self.pid,
            "generation": self.generation,
            "started_at": self.started_at,
            "last_error": self.last_error,
            "inflight": self.inflight,
            "log_path": str(self.log_path),
        }


async def _kill_group(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGKILL what is left of the engine's process group (e.g. an engine core whose API server died) and
    wait, bounded, until the group is gone, so that its memory is free when stop() returns."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            if process.poll() is not None:
                return
        process.poll()  # reap the leader if it is ours and dead
        await asyncio.sleep(0.1)


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def argv_summary(argv: Sequence[str]) -> str:
    return " ".join(argv[2:]) if len(argv) > 2 else " ".join(argv)
