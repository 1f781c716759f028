"""The gateway's models and their engines: start, add, remove, and swap with a bounded drain.

A swap never leaves a model without a serving engine: the replacement starts on a port of its own and
must become healthy first; only then does routing switch to it (one assignment on the event loop, so a
request is routed either to the old engine or to the new one, never to neither). Requests already on
the old engine finish (up to ``drain_timeout_s``), then it is stopped. If the replacement fails, the
old engine was never touched.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import httpx

from tt_serve.gateway.engine import Engine, EngineError, prepare, prepare_model_folder
from tt_serve.gateway.events import EventLog
from tt_serve.gateway.metrics import MetricsRing, parse_metrics, sample
from tt_serve.gateway.settings import GatewaySettings, ModelSpec

SAMPLE_INTERVAL_S = 2.0


class GatewayError(Exception):
    """An admin request that cannot be done: HTTP ``status`` and an OpenAI-style error ``kind``."""

    def __init__(self, status: int, message: str, kind: str = "BadRequestError") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


class Manager:
    def __init__(self, settings: GatewaySettings, config_path: Path | None, log_dir: Path) -> None:
        self.settings = settings
        self.config_path = config_path
        self.log_dir = log_dir
        self.events = EventLog()
        self.metrics: dict[str, MetricsRing] = {}
        self.current: dict[str, Engine] = {}  # the engine each model's requests go to
        self.busy: dict[str, str] = {}  # name -> "adding" | "swapping" | "removing"
        self._all: set[Engine] = set()  # every engine with a process, for shutdown
        self._generations: dict[str, int] = {}
        # No read timeout: a generation may legitimately stream for minutes.
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(None, connect=5.0),
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
        )
        self._sampler: asyncio.Task[None] | None = None
        self._launches: set[asyncio.Task[None]] = set()  # start-up launches (the loop keeps weak references)

    # ---- routing -------------------------------------------------------------------------------
    def route(self, name: str) -> Engine | None:
        return self.current.get(name)

    # ---- life cycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the configured models (concurrently, in the background) and the metrics sampler."""
        self._sampler = asyncio.create_task(self._sample_forever())
        for spec in self.settings.models:
            engine = self._new_engine(spec)
            self.current[spec.name] = engine
            task = asyncio.create_task(self._launch_quietly(engine))
            self._launches.add(task)
            task.add_done_callback(self._launches.discard)

    async def _launch_quietly(self, engine: Engine) -> None:
        try:
            await self._launch(engine)
        except EngineError:
            pass  # recorded on the engine and in the events; a swap can fix it

    async def close(self) -> None:
        for task in [*self._launches, *([self._sampler] if self._sampler else [])]:
            task.cancel()
        await asyncio.gather(*self._launches, return_exceptions=True)
        await asyncio.gather(*(engine.stop() for engine in list(self._all)), return_exceptions=True)
        await self.client.aclose()

    def _new_engine(self, spec: ModelSpec) -> Engine:
        generation = self._generations.get(spec.name, 0) + 1
        self._generations[spec.name] = generation
        self.metrics.setdefault(spec.name, MetricsRing())
        return Engine(spec, generation, self.log_dir)

    async def _launch(self, engine: Engine) -> None:
        """Prepare and start ``engine``; on failure it is left "failed" with the reason, and raised."""
        name = engine.spec.name
        try:
            prepared = await prepare(engine.spec, engine.port, self.config_path)
        except EngineError as error:
            engine.state, engine.last_error = "failed", error.message
            self.events.error(f"generation {engine.generation} cannot start: {error.message}", name)
            raise
        engine.backend = prepared.backend
        for warning in prepared.warnings:
            self.events.warning(warning, name)
        self.events.info(
            f"generation {engine.generation}: backend {prepared.backend} ({prepared.reason}); starting on "
            f"127.0.0.1:{engine.port}, log {engine.log_path}",
            name,
        )
        self._all.add(engine)
        try:
            await prepare_model_folder(prepared)
            await engine.start(prepared, self.settings.start_timeout_s, self.client)
        except EngineError as error:
            engine.state, engine.last_error = "failed", error.message
            self.events.error(f"generation {engine.generation} failed to start: {error.message}", name)
            await engine.stop()
            self._all.discard(engine)
            raise
        self.events.info(
            f"generation {engine.generation} serving (pid {engine.pid}, "
            f"{time.time() - engine.started_at:.0f} s to start)",
            name,
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
            raise GatewayError(409, f"model {name!r} is busy: {self.busy[name]} in progress", "ConflictError")
        self.busy[name] = what

    async def add(self, spec: ModelSpec) -> Engine:
        if spec.name in self.current or spec.name in self.busy:
            raise GatewayError(409, f"a model named {spec.name!r} already exists", "ConflictError")
        self._claim(spec.name, "adding")
        engine = self._new_engine(spec)
        self.current[spec.name] = engine  # visible as "starting"; requests get 503 until it serves
        self.events.info(f"adding {spec.model!r} (backend {spec.backend or 'resolved'})", spec.name)
        try:
            await self._launch(engine)
        except EngineError as error:
            del self.current[spec.name]
            raise GatewayError(error.status, error.message, "EngineStartError") from None
        finally:
            self.busy.pop(spec.name, None)
        return engine

    async def remove(self, name: str) -> None:
        if name not in self.current:
            raise GatewayError(404, f"no model named {name!r}", "NotFoundError")
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
    ) -> Engine:
        old = self.current.get(name)
        if old is None:
            raise GatewayError(404, f"no model named {name!r}", "NotFoundError")
        self._claim(name, "swapping")
        try:
            spec = dataclasses.replace(
                old.spec,
                backend=backend if backend is not None else old.spec.backend,
                engine_args=tuple(engine_args) if engine_args is not None else old.spec.engine_args,
                model=model if model is not None else old.spec.model,
            )
            new = self._new_engine(spec)
            self.events.info(
                f"swap: starting generation {new.generation} (backend {spec.backend or 'resolved'}, "
                f"engine args {list(spec.engine_args)}) beside generation {old.generation}",
                name,
            )
            try:
                await self._launch(new)
            except EngineError as error:
                self.events.error(f"swap failed; generation {old.generation} keeps serving", name)
                raise GatewayError(error.status, error.message, "EngineStartError") from None
            self.current[name] = new  # the switch: new requests go to the new engine from here on
            self.events.info(
                f"swap: requests go to generation {new.generation}; draining generation {old.generation} "
                f"({old.inflight} in flight)",
                name,
            )
            await self._retire(old)
            return new
        finally:
            self.busy.pop(name, None)

    # ---- read API ------------------------------------------------------------------------------
    def state(self, read_only: bool) -> dict[str, object]:
        return {
            "read_only": read_only,
            "models": [engine.as_dict() for engine in self.current.values()],
            "swaps_in_progress": [n for n, what in self.busy.items() if what == "swapping"],
        }

    def health(self) -> tuple[bool, dict[str, object]]:
        models = {
            name: "unhealthy" if e.state == "serving" and not e.healthy else e.state
            for name, e in self.current.items()
        }
        ok = all(e.state == "serving" and e.healthy for e in self.current.values())
        return ok, {"status": "ok" if ok else "degraded", "models": models}

    def metrics_json(self) -> dict[str, object]:
        return {"models": {name: ring.columns() for name, ring in self.metrics.items()}}

    # ---- health and metrics sampling -----------------------------------------------------------
    async def _sample_forever(self) -> None:
        while True:
            started = time.monotonic()
            engines = [e for e in self.current.values() if e.state == "serving"]
            await asyncio.gather(*(self._sample(e) for e in engines), return_exceptions=True)
            await asyncio.sleep(max(0.1, SAMPLE_INTERVAL_S - (time.monotonic() - started)))

    async def _sample(self, engine: Engine) -> None:
        name = engine.spec.name
        status = engine.process.poll() if engine.process is not None else None
        if status is not None:
            if engine.state == "serving":  # died under us: say so, keep it visible as failed
                engine.state, engine.healthy = "failed", False
                engine.last_error = (
                    f"the engine exited with status {status}; the end of its log ({engine.log_path}):\n"
                    f"{engine.log_tail()}"
                )
                self.events.error(f"generation {engine.generation} exited with status {status}", name)
            return
        try:
            health, scraped = await asyncio.gather(
                self.client.get(f"{engine.base_url}/health", timeout=5),
                self.client.get(f"{engine.base_url}/metrics", timeout=5),
            )
        except httpx.HTTPError as error:
            self._set_health(engine, False, f"{type(error).__name__}: {error}")
            return
        self._set_health(engine, health.status_code == 200, f"/health answered {health.status_code}")
        if scraped.status_code == 200 and engine.state == "serving":
            snapshot = parse_metrics(scraped.text, time.time())
            ring = self.metrics.get(name)
            if ring is not None:
                ring.add(sample(engine.last_snapshot, snapshot))  # type: ignore[arg-type]
            engine.last_snapshot = snapshot

    def _set_health(self, engine: Engine, healthy: bool, why: str) -> None:
        if engine.state != "serving" or healthy == engine.healthy:
            return
        engine.healthy = healthy
        if healthy:
            self.events.info(f"generation {engine.generation} healthy again", engine.spec.name)
        else:
            self.events.warning(f"generation {engine.generation} unhealthy: {why}", engine.spec.name)
