"""One engine: a vLLM OpenAI server process for one gateway model, started through tt-serve's launch path.

Once prepared (``preparation.py``: ``tt-serve serve MODEL --dry-run --json``), the gateway runs the plan's
command under the engine environment rule (``environment.py``), on 127.0.0.1 and a port picked just
before the process starts, and waits for ``/health``.

Each engine generation has a status file beside its log: the gateway records ``resolving`` and
``starting``, the plugin's worker appends its own phases (``TT_SERVE_STATUS_FILE``), and the gateway
records ``ready`` when ``/health`` answers 200 (``tt_serve.progress``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import httpx

from tt_serve import envs
from tt_serve.gateway.cards import Card
from tt_serve.gateway.secrets import Redactor, redact_args
from tt_serve.gateway.settings import ModelSpec
from tt_serve.launch import _die_with_parent
from tt_serve.progress import Phase, StartupProgress

if TYPE_CHECKING:
    from tt_serve.gateway.preparation import Prepared

State = Literal["starting", "serving", "draining", "stopped", "failed"]
LOG_TAIL_CHARS = 3000
PORT_ATTEMPTS = 3  # a port another process took between the pick and the engine's bind: pick again
PORT_TAKEN = "Address already in use"  # what the engine's bind error says (errno EADDRINUSE)
STATUS_FILE_ENV = envs.TT_SERVE_STATUS_FILE.name


class EngineError(Exception):
    """An engine could not be prepared (status 422) or started (502).

    ``message`` is the full story for the admin caller (with the end of the engine's log when there is
    one); ``summary`` is the one line shown to everyone else (state, events, 503 bodies).
    """

    def __init__(self, message: str, status: int, summary: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.summary = summary or message


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    def __init__(
        self,
        spec: ModelSpec,
        generation: int,
        log_dir: Path,
        redactor: Redactor,
        pick_port: Callable[[], int] = free_port,
    ) -> None:
        self.spec = spec
        self.generation = generation
        self.redactor = redactor
        self._pick_port = pick_port
        self.port: int | None = None  # picked just before the process starts
        base = log_dir / f"{_file_name(spec.name)}-g{generation}"
        self.log_path = base.with_name(base.name + ".log")
        self.status_path = base.with_name(base.name + ".status")
        self.status_path.unlink(missing_ok=True)  # a log_dir reused by an earlier gateway run
        self.progress = StartupProgress(self.status_path)
        self.state: State = "starting"
        self.healthy = False
        self.backend: str | None = spec.backend
        self.prepared: Prepared | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = time.time()
        self.ready_at: float | None = None
        self.last_error: str | None = None  # one line, for everyone
        self.error_log: str | None = None  # the end of the log when it failed, for the admin only
        self.waiting_for: str | None = None  # what a starting engine waits for before its process starts
        self.inflight = 0
        self.cards: tuple[Card, ...] = ()  # given by placement before it starts
        self.timeout = 0.0  # start_timeout_s of the current start
        self.last_snapshot: object | None = None  # the metrics sampler's previous scrape of THIS engine

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def where(self) -> str:
        return f"127.0.0.1:{self.port} (pid {self.pid})"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_status(self) -> int | None:
        """The process's exit status once it has ended, else None."""
        return self.process.poll() if self.process is not None else None

    @property
    def exclusive_device(self) -> bool:
        return self.prepared is not None and self.prepared.exclusive_device

    def acquire(self) -> Lease:
        return Lease(self)

    def log_tail(self, chars: int = LOG_TAIL_CHARS, start: int = 0) -> str:
        """The end of the log (from byte ``start`` on), with every known secret hidden."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(max(start, log.seek(0, os.SEEK_END) - chars))
                return self.redactor.text(log.read().decode(errors="replace"))
        except OSError:
            return "(no log)"

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def fail(self, summary: str, with_log: bool = True) -> EngineError:
        """Mark the engine failed; the error carries the log's end for the admin caller."""
        summary = self.redactor.text(summary)
        self.state, self.healthy, self.last_error = "failed", False, summary
        self.error_log = self.log_tail() if with_log else None
        message = f"{summary}; the end of its log:\n{self.error_log}" if with_log else summary
        return EngineError(message, 502, summary)

    async def start(
        self,
        timeout: float,
        client: httpx.AsyncClient,
        env: Mapping[str, str],
        on_port_taken: Callable[[Engine, int], None] | None = None,
    ) -> None:
        """Run the prepared command and return once ``/health`` answers 200; raise EngineError otherwise.

        A port taken between the pick and the engine's bind (the engine exits saying so) is picked
        again, at most PORT_ATTEMPTS times.
        """
        assert self.prepared is not None, "prepare the engine first"
        deadline = time.monotonic() + timeout
        self.timeout = timeout
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self.port = self._pick_port()
            log_start = self._log_size()
            retry = f"; port retry {attempt - 1}" if attempt > 1 else ""
            self.progress.record(Phase.STARTING, f"127.0.0.1:{self.port}{retry}")
            self._spawn(env)
            status = await self._wait_healthy(deadline, client)
            if status is None:
                self.progress.record(Phase.READY)
                self.state, self.healthy, self.ready_at = "serving", True, time.time()
                return
            if PORT_TAKEN in self.log_tail(start=log_start) and attempt < PORT_ATTEMPTS:
                if on_port_taken is not None:
                    on_port_taken(self, self.port)
                continue  # someone took the port after we picked it: a fresh one
            raise self.fail(
                f"the engine exited with status {status} before it was healthy (log: {self.log_path})"
            )
        raise AssertionError("unreachable")

    def _spawn(self, env: Mapping[str, str]) -> None:
        argv = [*self.prepared.argv, "--port", str(self.port)]  # type: ignore[union-attr]
        with open(self.log_path, "ab") as log:
            # Started from the event loop's thread: PR_SET_PDEATHSIG fires when the starting THREAD ends.
            # Its own process group, so that stop() can sweep the engine core with it.
            self.process = subprocess.Popen(
                argv,
                env={**env, STATUS_FILE_ENV: str(self.status_path)},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,  # also its own process group
            )
        self.started_at = time.time()

    async def _wait_healthy(self, deadline: float, client: httpx.AsyncClient) -> int | None:
        """None once /health answers 200; the exit status if the process ended first."""
        process = self.process
        assert process is not None
        while True:
            status = process.poll()
            if status is not None:
                await _kill_group(process)  # an engine core left behind by its API server
                return status
            try:
                if (await client.get(f"{self.base_url}/health", timeout=5)).status_code == 200:
                    return None
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                await self.stop()
                raise self.fail(
                    f"the engine was not healthy after {self.timeout:.0f} s (start_timeout_s; "
                    f"log: {self.log_path})"
                )
            await asyncio.sleep(0.5)

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
            self.progress.record(Phase.STOPPED)
        if self.state != "failed":
            self.state = "stopped"
        self.healthy = False

    def progress_dict(self) -> dict[str, object]:
        shown = self.progress.as_dict(now=self.ready_at)  # once ready, the start's duration stays put
        shown["generation"] = self.generation
        if self.waiting_for and self.process is None:
            shown["waiting_for"] = self.waiting_for
        return shown

    def as_dict(self, with_log: bool = False) -> dict[str, object]:
        """What the read API shows: secret arguments redacted; the log's end only ``with_log``."""
        return {
            "name": self.spec.name,
            "model": self.spec.model,
            "backend": self.backend,
            "exclusive_device": self.exclusive_device,
            # What the model takes (["text", "image"]), None until prepared or when it cannot be told.
            "inputs": dict(self.prepared.inputs) if self.prepared is not None else None,
            "cards": [card.id for card in self.cards],
            "engine_args": redact_args(self.spec.engine_args),
            "tt": dict(self.spec.tt),
            "state": self.state,
            "healthy": self.healthy,
            "port": self.port,
            "pid": self.pid,
            "generation": self.generation,
            "started_at": self.started_at,
            "last_error": self.last_error,
            "log_tail": self.error_log if with_log else None,
            "inflight": self.inflight,
            "log_path": str(self.log_path),
            "status_path": str(self.status_path),
            "progress": self.progress_dict(),
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
