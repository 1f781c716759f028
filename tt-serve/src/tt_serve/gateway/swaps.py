"""The two ways a gateway swap replaces a model's engine (see manager.py for when each is used)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from tt_serve.gateway.engine import Engine, EngineError
from tt_serve.gateway.errors import OVERLAP, STOP_THEN_START, GatewayError, SwapResult, shown_args

if TYPE_CHECKING:
    from tt_serve.gateway.manager import Manager


async def swap_overlap(manager: Manager, name: str, old: Engine, new: Engine) -> SwapResult:
    """Start the replacement beside the old engine; switch once it is healthy; drain and stop the old."""
    manager.events.info(
        f"swap: starting generation {new.generation} (backend {new.backend}, engine args "
        f"{shown_args(new)}) beside generation {old.generation}",
        name,
    )
    manager.pending[name] = new
    try:
        await manager._start(new)
    except EngineError as error:
        manager.events.error(f"swap failed; generation {old.generation} keeps serving", name)
        raise GatewayError(error.status, error.message, "EngineStartError") from None
    finally:
        manager.pending.pop(name, None)
    manager.current[name] = new  # the switch: new requests go to the new engine from here on
    manager.events.info(
        f"swap: requests go to generation {new.generation}; draining generation {old.generation} "
        f"({old.inflight} in flight)",
        name,
    )
    await manager._retire(old)
    return SwapResult(new, OVERLAP, 0.0)


async def swap_stop_then_start(manager: Manager, name: str, old: Engine, new: Engine) -> SwapResult:
    """Exclusive device: drain and stop the old engine, then start the new one; never both at once."""
    new.waiting_for = f"generation {old.generation} to finish its requests and stop (exclusive device)"
    manager.current[name] = new  # from here requests see the model loading: 503 + Retry-After, or held
    switched = time.time()
    manager.events.info(
        f"swap (exclusive device): stopping generation {old.generation} first ({old.inflight} in "
        f"flight, drain up to {manager.settings.drain_timeout_s:g} s), then starting generation "
        f"{new.generation} (backend {new.backend}, engine args {shown_args(new)})",
        name,
    )
    await manager._retire(old)
    new.waiting_for = None
    try:
        await manager._start(new)
    except EngineError as error:
        await _restore(manager, name, old, error)  # raises: the swap failed either way
    downtime = time.time() - switched
    manager.events.info(
        f"swap: generation {new.generation} serving; {name} had no serving engine for {downtime:.1f} s "
        "(stop-then-start)",
        name,
    )
    return SwapResult(new, STOP_THEN_START, downtime)


async def _restore(manager: Manager, name: str, old: Engine, error: EngineError) -> None:
    """After a failed stop-then-start swap: start the previous configuration again, say so, raise."""
    if old.prepared is None:
        manager.events.error(
            "swap failed; the previous configuration never started, nothing to restore", name
        )
        raise GatewayError(error.status, error.message, "EngineStartError")
    restored = manager._new_engine(old.spec)
    restored.prepared, restored.backend = old.prepared, old.backend
    manager.current[name] = restored
    manager.events.error(
        f"swap failed ({error.summary}); restarting the previous configuration as generation "
        f"{restored.generation}",
        name,
    )
    try:
        await manager._start(restored)
    except EngineError as again:
        manager.events.error(
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
    manager.events.warning(
        f"swap undone: the previous configuration serves again as generation {restored.generation}", name
    )
    raise GatewayError(
        error.status,
        f"{error.message}\n\nThe swap was undone: the previous configuration serves again as generation "
        f"{restored.generation}.",
        "EngineStartError",
    )
