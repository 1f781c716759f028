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

Cards (placement.py): a model that needs Tenstorrent cards gets its own before its first engine starts
(a configured model waits for them, answered 503 + Retry-After meanwhile; an added one is refused with
409 naming the holder); it keeps them across swaps, which then run stop-then-start on those cards, and
gives them back when it is removed or fails to start.

One place per job: the manager keeps the routing table and the admin operations; ``lifecycle.py`` an
engine's life (prepare, start, retire), ``placement.py`` the cards, ``swaps.py`` the two kinds of swap.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from tt_serve.gateway.cards import configured, discover
from tt_serve.gateway.engine import Engine, EngineError, free_port
from tt_serve.gateway.errors import GatewayError, SwapResult
from tt_serve.gateway.events import EventLog
from tt_serve.gateway.lifecycle import EngineFactory, Lifecycle
from tt_serve.gateway.metrics import MetricsRing
from tt_serve.gateway.placement import CardNeed, CardPool, card_env, card_need
from tt_serve.gateway.sampler import sample_forever
from tt_serve.gateway.secrets import (
    Redactor,
    restore_redacted,
    secret_arg_values,
    secret_env_values,
)
from tt_serve.gateway.settings import GatewaySettings, ModelSpec
from tt_serve.gateway.swaps import Swapper

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
        factory: EngineFactory | None = None,
        hooks: tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]] | None = None,
    ) -> None:
        """``factory`` makes engines of another kind (cluster mode); ``hooks``: (connect, disconnect),
        awaited before the models start and after every engine stopped."""
        self.settings = settings
        self.config_path = config_path
        self.log_dir = log_dir
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
        # No read timeout: a generation may legitimately stream for minutes.
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(None, connect=5.0),
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
        )
        found = discover(settings.device_root)
        self.pool = CardPool(configured(settings.cards, found) if settings.cards is not None else found)
        self.lifecycle = Lifecycle(
            settings, config_path, log_dir, self.redactor, self.events, self.client, pick_port, factory
        )
        self.swapper = Swapper(
            self.current, self.pending, self.lifecycle, self.pool, self.events, settings.drain_timeout_s
        )
        self._sampler: asyncio.Task[None] | None = None
        self._hooks = hooks

    def _learn_secrets(self, spec: ModelSpec) -> None:
        self.redactor.add(*secret_arg_values(spec.engine_args), *secret_env_values(spec.env))

    # ---- routing -------------------------------------------------------------------------------
    def route(self, name: str) -> Engine | None:
        return self.current.get(name)

    async def wait_while_loading(self, name: str, hold_s: float) -> Engine | None:
        """The model's engine once it is no longer starting, or still starting after ``hold_s``."""
        deadline = asyncio.get_running_loop().time() + hold_s
        engine = self.current.get(name)
        while (
            engine is not None and engine.state == "starting" and asyncio.get_running_loop().time() < deadline
        ):
            await asyncio.sleep(0.1)
            engine = self.current.get(name)
        return engine

    def retry_after(self, engine: Engine) -> int:
        return self.lifecycle.retry_after(engine)

    # ---- life cycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the configured models (concurrently, in the background) and the metrics sampler."""
        if self._hooks is not None:
            await self._hooks[0]()
        self._sampler = asyncio.create_task(sample_forever(self))
        if self.pool.cards:
            shown = ", ".join(
                f"{c.id} ({c.board or 'board unknown'}, {c.pci_address or c.node})"
                for c in self.pool.cards.values()
            )
            self.events.info(f"cards on this host: {shown}")
        # Configured models try for their cards in the config file's order (each waits for the previous
        # one's first try), so which model gets which free card does not depend on start-up timing.
        previous: asyncio.Event | None = None
        for spec in self.settings.models:
            engine = self._new_engine(spec)
            self.current[spec.name] = engine
            tried = asyncio.Event()
            self._start_first(engine, "starting", quiet=True, turn=(previous, tried))
            previous = tried

    async def close(self) -> None:
        tasks = [*self._first.values(), *([self._sampler] if self._sampler else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.lifecycle.close()
        if self._hooks is not None:
            await self._hooks[1]()
        await self.client.aclose()

    def _new_engine(self, spec: ModelSpec) -> Engine:
        self.metrics.setdefault(spec.name, MetricsRing())
        self._learn_secrets(spec)
        return self.lifecycle.new(spec)

    def _need(self, engine: Engine) -> CardNeed:
        assert engine.prepared is not None
        return card_need(engine.spec, self.lifecycle.engine_env(engine), engine.prepared.needs_card)

    async def _place(self, engine: Engine, wait: bool, tried: asyncio.Event | None = None) -> None:
        """Give ``engine`` its model's cards: wait while others hold them (``wait``) or raise 409.
        ``tried`` is set after the first try."""
        name, need = engine.spec.name, self._need(engine)
        if getattr(engine, "placed_by_cluster", False) or need.count == 0:
            if tried is not None:
                tried.set()  # nothing to take from the pool: the next model's turn at once
            engine.ttnpu = need.count  # type: ignore[attr-defined]  # Ray: this many per replica
            return

        def waiting(why: str | None) -> None:
            engine.waiting_for = why
            if tried is not None:
                tried.set()

        engine.cards = (
            await self.pool.wait_claim(name, need, waiting) if wait else self.pool.claim(name, need)
        )
        self.events.info(
            f"generation {engine.generation} gets card(s) {', '.join(str(c.id) for c in engine.cards)} "
            f"({need.why})",
            name,
        )

    def _start_first(
        self,
        engine: Engine,
        what: str,
        quiet: bool,
        turn: tuple[asyncio.Event | None, asyncio.Event] | None = None,
    ) -> asyncio.Task[None]:
        """Launch a model's first engine in a task the model owns until it serves or fails; ``turn``:
        (the event to wait for before taking cards, the event to set once it has tried)."""
        name = engine.spec.name
        self.busy[name] = what
        before, tried = turn if turn is not None else (None, None)

        async def launch() -> None:
            try:
                await self.lifecycle.prepare(engine)
                if before is not None:
                    await before.wait()
                await self._place(engine, wait=quiet, tried=tried)
                await self.lifecycle.start(engine, card_env(engine.cards, self.lifecycle.engine_env(engine)))
            except (EngineError, GatewayError) as error:
                self.pool.release(name)
                if isinstance(error, GatewayError):  # placement refused it: shown like a failed start
                    engine.state, engine.last_error = "failed", error.message
                    self.events.error(f"generation {engine.generation} cannot start: {error.message}", name)
                if not quiet:
                    raise  # recorded on the engine and in the events either way
            except asyncio.CancelledError:
                self.pool.release(name)
                raise
            finally:
                if tried is not None:
                    tried.set()  # failed or cancelled before its try: the next model's turn
                if self._first.get(name) is task:
                    del self._first[name]
                    self.busy.pop(name, None)

        task = asyncio.create_task(launch())
        self._first[name] = task
        return task

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
        except (EngineError, GatewayError) as error:
            if self.current.get(spec.name) is engine:
                del self.current[spec.name]
            if isinstance(error, GatewayError):
                raise
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
            await self.lifecycle.stop(engine)
            self.pool.release(name)
            self.metrics.pop(name, None)
            self.events.info(f"generation {engine.generation} stopped before it served", name)
            return
        self._claim(name, "removing")
        try:
            engine = self.current.pop(name)  # new requests get 404 from here on
            self.events.info(f"removing generation {engine.generation}", name)
            await self.lifecycle.retire(engine)
            freed = self.pool.release(name)
            if freed:
                self.events.info(f"card(s) {', '.join(map(str, freed))} free again", name)
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
        cards: int | tuple[int, ...] | None = None,
        replicas: int | None = None,
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
                cards=cards if cards is not None else old.spec.cards,
                replicas=replicas if replicas is not None else old.spec.replicas,
            )
            if spec.replicas > 1 and not getattr(old, "placed_by_cluster", False):
                raise GatewayError(422, "more than one replica needs cluster mode ([gateway.cluster])")
            new = self._new_engine(spec)
            self.pending[name] = new  # shown beside the model while it is resolved and checked
            try:
                await self.lifecycle.prepare(new)
                # The cards are claimed now, while the old engine serves: a refusal changes nothing.
                if getattr(new, "placed_by_cluster", False):
                    await self._place(new, wait=False)
                else:
                    need = self._need(new)
                    if old.cards or need.count:
                        new.cards = self.pool.claim(name, need)
            except (EngineError, GatewayError) as error:
                message = error.message if isinstance(error, GatewayError) else error.summary
                self.events.error(f"swap refused: {message}; generation {old.generation} keeps serving", name)
                if isinstance(error, GatewayError):
                    raise
                raise GatewayError(error.status, error.message, "EngineStartError") from None
            finally:
                self.pending.pop(name, None)
            if getattr(new, "placed_by_cluster", False):
                return await self.swapper.rolling(name, old, new)
            if old.exclusive_device or new.exclusive_device or old.cards or new.cards:
                return await self.swapper.stop_then_start(name, old, new)
            return await self.swapper.overlap(name, old, new)
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
            "cards": self.pool.as_list(),
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
