"""The gateway's models and their engines: start, add, remove, and swap with a bounded drain.

Two kinds of swap, chosen by the backends involved:

- **overlap** (neither backend holds an exclusive device): the replacement starts on a port of its own
  and must become healthy first; only then does routing switch to it (one assignment on the event loop,
  so a request is routed either to the old engine or to the new one, never to neither). Requests already
  on the old engine finish (up to ``drain_timeout_s``), then it is stopped. If the replacement fails,
  the old engine was never touched.
- **stop-then-start** (the old or the new backend holds an exclusive device, e.g. a Tenstorrent card
  that one engine opens at a time): the replacement is resolved and checked while the old engine still
  serves; then requests for the model see it loading (503 with ``Retry-After`` and the progress, or
  held up to ``hold_requests_s``), the old engine drains (bounded) and stops, and only then does the new
  one start. Never both at once. If the new engine fails, the previous configuration is started again
  and the swap's answer says so.

A model's first engine (configured, or added) is started by a task the model owns until it serves: a
removal cancels that task, which stops whatever it had started, so no engine outlives its model.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tt_serve.gateway.engine import Engine, EngineError, free_port, prepare, prepare_model_folder
from tt_serve.gateway.errors import GatewayError, SwapResult
from tt_serve.gateway.events import EventLog
from tt_serve.gateway.metrics import MetricsRing
from tt_serve.gateway.sampler import sample_forever
from tt_serve.gateway.secrets import (
    Redactor,
    restore_redacted,
    secret_arg_values,
    secret_env_values,
)
from tt_serve.gateway.settings import GatewaySettings, ModelSpec
from tt_serve.gateway.swaps import swap_overlap, swap_stop_then_start
from tt_serve.progress import Phase

RETRY_AFTER_UNKNOWN_S = 5  # a model's first start: nothing to estimate from
RETRY_AFTER_MAX_S = 30


_BUSY = {
    "starting": "its first engine is starting; wait until it serves (or fails), or remove it",
    "adding": "it is being added; wait until it serves (or fails), or remove it",
    "swapping": "a swap is in progress",
    "removing": "it is being removed",
}


class Manager:
    def __init__(
        self,
        settings: GatewaySettings,
        config_path: Path | None,
        log_dir: Path,
        pick_port: Callable[[], int] = free_port,
    ) -> None:
        self.settings = settings
        self.config_path = config_path
        self.log_dir = log_dir
        self._pick_port = pick_port
        rule = settings.engine_env
        self.redactor = Redactor(
            secret_env_values(os.environ, [name for name in os.environ if rule.is_secret(name)])
        )
        for spec in settings.models:
            self._learn_secrets(spec)
        self.events = EventLog(redact=self.redactor.text)
        self.metrics: dict[str, MetricsRing] = {}
        self.current: dict[str, Engine] = {}  # the engine each model's requests go to
        self.pending: dict[str, Engine] = {}  # an overlap swap's replacement, while it starts
        self.busy: dict[str, str] = {}  # name -> "starting" | "adding" | "swapping" | "removing"
        self._first: dict[str, asyncio.Task[None]] = {}  # a model's first start, cancelled by its removal
        self._all: set[Engine] = set()  # every engine with a process, for shutdown
        self._generations: dict[str, int] = {}
        self._start_seconds: dict[str, float] = {}  # each model's last start, for Retry-After
        # No read timeout: a generation may legitimately stream for minutes.
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(None, connect=5.0),
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
        )
        self._sampler: asyncio.Task[None] | None = None

    def _learn_secrets(self, spec: ModelSpec) -> None:
        self.redactor.add(*secret_arg_values(spec.engine_args), *secret_env_values(spec.env))

    # ---- routing -------------------------------------------------------------------------------
    def route(self, name: str) -> Engine | None:
        return self.current.get(name)

    async def wait_while_loading(self, name: str, hold_s: float) -> Engine | None:
        """The model's engine once it is no longer starting, or still starting after ``hold_s``."""
        deadline = time.monotonic() + hold_s
        engine = self.current.get(name)
        while engine is not None and engine.state == "starting" and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            engine = self.current.get(name)
        return engine

    def retry_after(self, engine: Engine) -> int:
        """Seconds a client should wait: the model's last start time less what this start has taken."""
        last = self._start_seconds.get(engine.spec.name)
        if last is None:
            return RETRY_AFTER_UNKNOWN_S
        remaining = last - (time.time() - engine.progress.started_at)
        return int(min(RETRY_AFTER_MAX_S, max(1, round(remaining))))

    # ---- life cycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the configured models (concurrently, in the background) and the metrics sampler."""
        self._sampler = asyncio.create_task(sample_forever(self))
        for spec in self.settings.models:
            engine = self._new_engine(spec)
            self.current[spec.name] = engine
            self._start_first(engine, "starting", quiet=True)

    async def close(self) -> None:
        tasks = [*self._first.values(), *([self._sampler] if self._sampler else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(engine.stop() for engine in list(self._all)), return_exceptions=True)
        await self.client.aclose()

    def _new_engine(self, spec: ModelSpec) -> Engine:
        generation = self._generations.get(spec.name, 0) + 1
        self._generations[spec.name] = generation
        self.metrics.setdefault(spec.name, MetricsRing())
        self._learn_secrets(spec)
        return Engine(spec, generation, self.log_dir, self.redactor, self._pick_port)

    def _start_first(self, engine: Engine, what: str, quiet: bool) -> asyncio.Task[None]:
        """Launch a model's first engine in a task the model owns until it serves or fails."""
        name = engine.spec.name
        self.busy[name] = what

        async def launch() -> None:
            try:
                await self._launch(engine)
            except EngineError:
                if not quiet:
                    raise  # recorded on the engine and in the events either way
            finally:
                if self._first.get(name) is task:
                    del self._first[name]
                    self.busy.pop(name, None)

        task = asyncio.create_task(launch())
        self._first[name] = task
        return task

    async def _launch(self, engine: Engine) -> None:
        """Prepare and start ``engine``; on failure it is left "failed" with the reason, and raised."""
        name = engine.spec.name
        engine.progress.record(Phase.RESOLVING)
        try:
            engine.prepared = await prepare(
                engine.spec, self.config_path, self.settings.engine_env, self.redactor
            )
        except EngineError as error:
            engine.state, engine.last_error = "failed", error.summary
            self.events.error(f"generation {engine.generation} cannot start: {error.summary}", name)
            raise
        except asyncio.CancelledError:
            engine.state = "stopped"
            raise
        engine.backend = engine.prepared.backend
        for warning in engine.prepared.warnings:
            self.events.warning(warning, name)
        await self._start(engine)

    async def _start(self, engine: Engine) -> None:
        """Start a prepared engine and wait until it serves; stopped (and raised) if it does not."""
        name, prepared = engine.spec.name, engine.prepared
        assert prepared is not None
        self.events.info(
            f"generation {engine.generation}: backend {prepared.backend} ({prepared.reason}"
            f"{'; exclusive device' if prepared.exclusive_device else ''}); starting, log {engine.log_path}",
            name,
        )
        env = {**self.settings.engine_env.apply(os.environ), **engine.spec.env, **prepared.env_changes}
        self._all.add(engine)
        try:
            await prepare_model_folder(prepared, env)
            await engine.start(self.settings.start_timeout_s, self.client, env, self._port_taken)
        except EngineError as error:
            self.events.error(f"generation {engine.generation} failed to start: {error.summary}", name)
            await engine.stop()
            self._all.discard(engine)
            raise
        except asyncio.CancelledError:  # its model was removed (or the gateway stops): no engine left over
            await engine.stop()
            self._all.discard(engine)
            raise
        took = (engine.ready_at or time.time()) - engine.progress.started_at
        self._start_seconds[name] = took
        self.events.info(
            f"generation {engine.generation} serving on 127.0.0.1:{engine.port} (pid {engine.pid}, "
            f"{took:.0f} s to start)",
            name,
        )

    def _port_taken(self, engine: Engine, port: int) -> None:
        self.events.warning(
            f"generation {engine.generation}: port {port} was taken before the engine could bind it; "
            "starting again on another port",
            engine.spec.name,
        )

    async def _retire(self, engine: Engine) -> None:
        """Drain (bounded) and stop an engine no request is routed to any more."""
        name = engine.spec.name
        if engine.process is not None and engine.process.poll() is None:
            drained = await engine.drain(self.settings.drain_timeout_s)
            if not drained:
                self.events.warning(
                    f"generation {engine.generation}: {engine.inflight} request(s) still running after "
                    f"drain_timeout_s={self.settings.drain_timeout_s:g}; stopping it anyway",
                    name,
                )
        await engine.stop()
        self._all.discard(engine)
        self.events.info(f"generation {engine.generation} stopped", name)

    # ---- admin operations ----------------------------------------------------------------------
    def _claim(self, name: str, what: str) -> None:
        if name in self.busy:
            raise GatewayError(409, f"model {name!r} is busy: {_BUSY[self.busy[name]]}", "ConflictError")
        self.busy[name] = what

    async def add(self, spec: ModelSpec) -> Engine:
        if spec.name in self.current or spec.name in self.busy:
            raise GatewayError(409, f"a model named {spec.name!r} already exists", "ConflictError")
        engine = self._new_engine(spec)
        self.current[spec.name] = engine  # visible as "starting"; requests get 503 until it serves
        self.events.info(f"adding {spec.model!r} (backend {spec.backend or 'resolved'})", spec.name)
        task = self._start_first(engine, "adding", quiet=False)
        try:
            # Shielded: a client that hangs up does not stop the start; a removal does (it cancels the task).
            await asyncio.shield(task)
        except EngineError as error:
            if self.current.get(spec.name) is engine:
                del self.current[spec.name]
            raise GatewayError(error.status, error.message, "EngineStartError") from None
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # this request itself was cancelled
            raise GatewayError(
                409, f"model {spec.name!r} was removed while its engine was starting", "ConflictError"
            ) from None
        return engine

    async def remove(self, name: str) -> None:
        if name not in self.current:
            raise GatewayError(404, f"no model named {name!r}", "NotFoundError")
        first = self._first.get(name)
        if first is not None:  # its first engine is still starting: stop the start, and what it started
            engine = self.current.pop(name)
            self.events.info(f"removing generation {engine.generation} while it starts", name)
            first.cancel()
            await asyncio.gather(first, return_exceptions=True)
            await engine.stop()
            self._all.discard(engine)
            self.metrics.pop(name, None)
            self.events.info(f"generation {engine.generation} stopped before it served", name)
            return
        self._claim(name, "removing")
        try:
            engine = self.current.pop(name)  # new requests get 404 from here on
            self.events.info(f"removing generation {engine.generation}", name)
            await self._retire(engine)
            self.metrics.pop(name, None)
        finally:
            self.busy.pop(name, None)

    async def swap(
        self,
        name: str,
        *,
        backend: str | None = None,
        engine_args: list[str] | None = None,
        model: str | None = None,
    ) -> SwapResult:
        old = self.current.get(name)
        if old is None:
            raise GatewayError(404, f"no model named {name!r}", "NotFoundError")
        self._claim(name, "swapping")
        try:
            if engine_args is not None:
                try:
                    engine_args = restore_redacted(engine_args, old.spec.engine_args)
                except ValueError as error:
                    raise GatewayError(422, str(error)) from None
            spec = dataclasses.replace(
                old.spec,
                backend=backend if backend is not None else old.spec.backend,
                engine_args=tuple(engine_args) if engine_args is not None else old.spec.engine_args,
                model=model if model is not None else old.spec.model,
            )
            new = self._new_engine(spec)
            self.pending[name] = new  # shown beside the model while it is resolved and checked
            new.progress.record(Phase.RESOLVING)
            try:
                new.prepared = await prepare(spec, self.config_path, self.settings.engine_env, self.redactor)
            except EngineError as error:
                self.events.error(
                    f"swap refused: {error.summary}; generation {old.generation} keeps serving", name
                )
                raise GatewayError(error.status, error.message, "EngineStartError") from None
            finally:
                self.pending.pop(name, None)
            new.backend = new.prepared.backend
            for warning in new.prepared.warnings:
                self.events.warning(warning, name)
            if old.exclusive_device or new.exclusive_device:
                return await swap_stop_then_start(self, name, old, new)
            return await swap_overlap(self, name, old, new)
        finally:
            self.busy.pop(name, None)

    # ---- read API ------------------------------------------------------------------------------
    def state(self, read_only: bool, with_logs: bool) -> dict[str, object]:
        models = []
        for name, engine in self.current.items():
            entry = engine.as_dict(with_logs)
            pending = self.pending.get(name)
            entry["pending"] = pending.as_dict(with_logs) if pending is not None else None
            models.append(entry)
        return {
            "read_only": read_only,
            "log_tails_shown": with_logs,
            "models": models,
            "swaps_in_progress": [n for n, what in self.busy.items() if what == "swapping"],
        }

    def health(self) -> tuple[bool, dict[str, object]]:
        models = {
            name: "unhealthy" if e.state == "serving" and not e.healthy else e.state
            for name, e in self.current.items()
        }
        ok = all(e.state == "serving" and e.healthy for e in self.current.values())
        body: dict[str, object] = {"status": "ok" if ok else "degraded", "models": models}
        loading = {name: e.progress_dict() for name, e in self.current.items() if e.state == "starting"}
        if loading:
            body["loading"] = loading
        return ok, body

    def model_health(self, name: str) -> tuple[int, dict[str, object]]:
        """One model's health, for a load balancer that routes by model: one model loading or failed
        does not take the gateway's other models out of rotation. 200 serving and healthy, 503 otherwise
        (with the progress while it loads), 404 for a model the gateway does not serve."""
        engine = self.current.get(name)
        if engine is None:
            return 404, {"model": name, "status": "unknown model"}
        ok = engine.state == "serving" and engine.healthy
        state = "unhealthy" if engine.state == "serving" and not engine.healthy else engine.state
        body: dict[str, object] = {"model": name, "status": "ok" if ok else state}
        if engine.state == "starting":
            body["loading"] = engine.progress_dict()
        return (200 if ok else 503), body

    def metrics_json(self) -> dict[str, object]:
        return {"models": {name: ring.columns() for name, ring in self.metrics.items()}}
