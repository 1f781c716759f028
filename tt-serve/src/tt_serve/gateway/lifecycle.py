"""An engine's life: numbered, prepared (resolution and checks), started with its environment, retired
(bounded drain, then stop). Knows nothing of routing or cards: the manager decides which engine a model's
requests go to, placement which cards an engine gets (passed in as variables).

Every engine with a process is tracked here, so that closing the gateway stops them all; each model's
last start time is kept for the Retry-After of the next start.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx

from tt_serve.gateway.engine import Engine, EngineError, free_port
from tt_serve.gateway.events import EventLog
from tt_serve.gateway.preparation import prepare, prepare_model_folder
from tt_serve.gateway.secrets import Redactor
from tt_serve.gateway.settings import GatewaySettings, ModelSpec
from tt_serve.progress import Phase

RETRY_AFTER_UNKNOWN_S = 5  # a model's first start: nothing to estimate from
RETRY_AFTER_MAX_S = 30

# (spec, generation, redactor) -> a new, unstarted engine of another kind (cluster mode)
EngineFactory = Callable[[ModelSpec, int, Redactor], Engine]


class Lifecycle:
    def __init__(
        self,
        settings: GatewaySettings,
        config_path: Path | None,
        log_dir: Path,
        redactor: Redactor,
        events: EventLog,
        client: httpx.AsyncClient,
        pick_port: Callable[[], int] = free_port,
        factory: EngineFactory | None = None,
    ) -> None:
        self.settings = settings
        self.config_path = config_path
        self.log_dir = log_dir
        self.redactor = redactor
        self.events = events
        self.client = client
        self._factory = factory or (
            lambda spec, generation, redactor: Engine(spec, generation, log_dir, redactor, pick_port)
        )
        self._all: set[Engine] = set()  # every engine with a process, for close()
        self._generations: dict[str, int] = {}
        self._start_seconds: dict[str, float] = {}  # each model's last start, for Retry-After

    def new(self, spec: ModelSpec) -> Engine:
        """The model's next generation (not started)."""
        generation = self._generations.get(spec.name, 0) + 1
        self._generations[spec.name] = generation
        return self._factory(spec, generation, self.redactor)

    def retry_after(self, engine: Engine) -> int:
        """Seconds a client should wait: the model's last start time less what this start has taken."""
        last = self._start_seconds.get(engine.spec.name)
        if last is None:
            return RETRY_AFTER_UNKNOWN_S
        remaining = last - (time.time() - engine.progress.started_at)
        return int(min(RETRY_AFTER_MAX_S, max(1, round(remaining))))

    async def prepare(self, engine: Engine) -> None:
        """Resolve and check ``engine``'s configuration; on failure it is left "failed" and raised."""
        name = engine.spec.name
        engine.progress.record(Phase.RESOLVING)
        local = getattr(engine, "local_prepared", None)
        if local is not None:  # a cluster engine: each replica resolves and checks on its own host
            engine.prepared = local()
            engine.backend = engine.prepared.backend
            return
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

    def engine_env(self, engine: Engine) -> dict[str, str]:
        """The environment an engine's processes get (before its cards): the gateway's, by the engine
        rule, the model's ``env``, and what ``tt-serve serve`` sets for its backend."""
        assert engine.prepared is not None
        return {
            **self.settings.engine_env.apply(os.environ),
            **engine.spec.env,
            **engine.prepared.env_changes,
        }

    async def start(self, engine: Engine, extra_env: Mapping[str, str] | None = None) -> None:
        """Start a prepared engine and wait until it serves; stopped (and raised) if it does not.
        ``extra_env``: its cards' variables (placement.card_env)."""
        name, prepared = engine.spec.name, engine.prepared
        assert prepared is not None
        cards = f"; cards {', '.join(str(c.id) for c in engine.cards)}" if engine.cards else ""
        self.events.info(
            f"generation {engine.generation}: backend {prepared.backend} ({prepared.reason}"
            f"{'; exclusive device' if prepared.exclusive_device else ''}{cards}); starting, log "
            f"{engine.log_path}",
            name,
        )
        env = {**self.engine_env(engine), **(extra_env or {})}
        self._all.add(engine)
        try:
            await prepare_model_folder(prepared, env)
            await engine.start(self.settings.start_timeout_s, self.client, env, self._port_taken)
        except EngineError as error:
            self.events.error(f"generation {engine.generation} failed to start: {error.summary}", name)
            await self.stop(engine)
            raise
        except asyncio.CancelledError:  # its model was removed (or the gateway stops): no engine left over
            await self.stop(engine)
            raise
        took = (engine.ready_at or time.time()) - engine.progress.started_at
        self._start_seconds[name] = took
        self.events.info(
            f"generation {engine.generation} serving on {engine.where} ({took:.0f} s to start)", name
        )

    def _port_taken(self, engine: Engine, port: int) -> None:
        self.events.warning(
            f"generation {engine.generation}: port {port} was taken before the engine could bind it; "
            "starting again on another port",
            engine.spec.name,
        )

    async def retire(self, engine: Engine) -> None:
        """Drain (bounded) and stop an engine no request is routed to any more."""
        name = engine.spec.name
        if engine.running:
            drained = await engine.drain(self.settings.drain_timeout_s)
            if not drained:
                self.events.warning(
                    f"generation {engine.generation}: {engine.inflight} request(s) still running after "
                    f"drain_timeout_s={self.settings.drain_timeout_s:g}; stopping it anyway",
                    name,
                )
        await self.stop(engine)
        self.events.info(f"generation {engine.generation} stopped", name)

    async def stop(self, engine: Engine) -> None:
        """Stop at once (no drain): a start that failed or was cancelled, a removal while starting."""
        await engine.stop()
        self._all.discard(engine)

    def hand_over(self, old: Engine) -> None:
        """``old`` was replaced in place (a rolling redeploy of the same cluster application): nothing
        left to stop."""
        old.owns_app = False  # type: ignore[attr-defined]
        old.state, old.healthy = "stopped", False
        self._all.discard(old)

    async def close(self) -> None:
        await asyncio.gather(*(engine.stop() for engine in list(self._all)), return_exceptions=True)
        self._all.clear()
