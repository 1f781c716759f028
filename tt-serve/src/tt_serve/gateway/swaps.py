"""The ways a swap replaces a model's engine; the manager decides which (see manager.py).

A swap works through three public collaborators and nothing else: the manager's routing table
(``current``: where each model's requests go; ``pending``: an overlap swap's replacement, shown while it
starts), the engine :class:`~tt_serve.gateway.lifecycle.Lifecycle` (start, retire) and the card
:class:`~tt_serve.gateway.placement.CardPool` (which cards the model holds).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tt_serve.gateway.engine import Engine, EngineError
from tt_serve.gateway.errors import (
    OVERLAP,
    ROLLING,
    STOP_THEN_START,
    GatewayError,
    SwapResult,
    shown_args,
)
from tt_serve.gateway.events import EventLog
from tt_serve.gateway.lifecycle import Lifecycle
from tt_serve.gateway.placement import CardPool, card_env


@dataclass
class Swapper:
    current: dict[str, Engine]  # the manager's routing table (shared, not copied)
    pending: dict[str, Engine]
    lifecycle: Lifecycle
    pool: CardPool
    events: EventLog
    drain_timeout_s: float

    async def _start(self, engine: Engine) -> None:
        await self.lifecycle.start(engine, card_env(engine.cards, self.lifecycle.engine_env(engine)))

    async def overlap(self, name: str, old: Engine, new: Engine) -> SwapResult:
        """Start the replacement beside the old engine; switch once it is healthy; drain and stop the old."""
        self.events.info(
            f"swap: starting generation {new.generation} (backend {new.backend}, engine args "
            f"{shown_args(new)}) beside generation {old.generation}",
            name,
        )
        self.pending[name] = new
        try:
            await self._start(new)
        except EngineError as error:
            self.events.error(f"swap failed; generation {old.generation} keeps serving", name)
            raise GatewayError(error.status, error.message, "EngineStartError") from None
        finally:
            self.pending.pop(name, None)
        self.current[name] = new  # the switch: new requests go to the new engine from here on
        self.events.info(
            f"swap: requests go to generation {new.generation}; draining generation {old.generation} "
            f"({old.inflight} in flight)",
            name,
        )
        await self.lifecycle.retire(old)
        self.pool.release(name, keep=[c.id for c in new.cards])
        return SwapResult(new, OVERLAP, 0.0)

    async def stop_then_start(self, name: str, old: Engine, new: Engine) -> SwapResult:
        """Exclusive device (or cards): drain and stop the old engine, then start the new one on the
        model's cards (``new.cards``, claimed by the caller); never both at once."""
        why = "its cards" if old.cards or new.cards else "exclusive device"
        new.waiting_for = f"generation {old.generation} to finish its requests and stop ({why})"
        self.current[name] = new  # from here requests see the model loading: 503 + Retry-After, or held
        switched = time.time()
        cards = f" on card(s) {', '.join(str(c.id) for c in new.cards)}" if new.cards else ""
        self.events.info(
            f"swap ({why}): stopping generation {old.generation} first ({old.inflight} in flight, drain "
            f"up to {self.drain_timeout_s:g} s), then starting generation {new.generation}{cards} "
            f"(backend {new.backend}, engine args {shown_args(new)})",
            name,
        )
        await self.lifecycle.retire(old)
        new.waiting_for = None
        try:
            await self._start(new)
        except EngineError as error:
            self.pool.release(name, keep=[c.id for c in old.cards])  # the old configuration's cards
            await self._restore(name, old, error)  # raises: the swap failed either way
        self.pool.release(name, keep=[c.id for c in new.cards])  # cards the new one no longer needs
        downtime = time.time() - switched
        self.events.info(
            f"swap: generation {new.generation} serving; {name} had no serving engine for {downtime:.1f} s "
            "(stop-then-start)",
            name,
        )
        return SwapResult(new, STOP_THEN_START, downtime)

    async def rolling(self, name: str, old: Engine, new: Engine) -> SwapResult:
        """A cluster model: redeploy the same application; Ray Serve replaces its replicas a few at a time,
        each stopped before its replacement starts (exclusive cards). Requests keep going to the
        application; while it has no running replica they get 503 + Retry-After (``new`` follows Serve)."""
        self.events.info(
            f"swap (rolling redeploy): generation {new.generation} replaces generation {old.generation} "
            f"replica by replica (backend {new.backend}, engine args {shown_args(new)})",
            name,
        )
        self.current[name] = new
        try:
            await self._start(new)
        except EngineError as error:
            self.lifecycle.hand_over(old)
            await self._restore(name, old, error)  # raises
        self.lifecycle.hand_over(old)
        downtime = getattr(new, "downtime_s", 0.0)
        self.events.info(
            f"swap: generation {new.generation} serving; {name} had no running replica for {downtime:.1f} s",
            name,
        )
        return SwapResult(new, ROLLING, downtime)

    async def _restore(self, name: str, old: Engine, error: EngineError) -> None:
        """After a failed stop-then-start swap: start the previous configuration again, say so, raise."""
        if old.prepared is None:
            self.events.error(
                "swap failed; the previous configuration never started, nothing to restore", name
            )
            raise GatewayError(error.status, error.message, "EngineStartError")
        restored = self.lifecycle.new(old.spec)
        restored.prepared, restored.backend, restored.cards = old.prepared, old.backend, old.cards
        self.current[name] = restored
        self.events.error(
            f"swap failed ({error.summary}); restarting the previous configuration as generation "
            f"{restored.generation}",
            name,
        )
        try:
            await self._start(restored)
        except EngineError as again:
            self.events.error(
                f"the previous configuration failed to start too; {name} has no engine: swap it to a "
                "working configuration or remove it",
                name,
            )
            raise GatewayError(
                error.status,
                f"{error.message}\n\nRestarting the previous configuration (generation "
                f"{restored.generation}) failed too: {again.message}",
                "EngineStartError",
            ) from None
        self.events.warning(
            f"swap undone: the previous configuration serves again as generation {restored.generation}", name
        )
        raise GatewayError(
            error.status,
            f"{error.message}\n\nThe swap was undone: the previous configuration serves again as generation "
            f"{restored.generation}.",
            "EngineStartError",
        )
