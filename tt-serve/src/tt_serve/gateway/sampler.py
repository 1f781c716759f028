"""The gateway's sampler: each serving engine's health and metrics, for routing state and the console."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import httpx

from tt_serve.gateway.engine import Engine
from tt_serve.gateway.metrics import parse_metrics, sample

if TYPE_CHECKING:
    from tt_serve.gateway.manager import Manager

SAMPLE_INTERVAL_S = 2.0


async def sample_forever(manager: Manager) -> None:
    """Every SAMPLE_INTERVAL_S: each serving engine's /health and /metrics."""
    while True:
        started = time.monotonic()
        engines = [e for e in manager.current.values() if e.state == "serving"]
        await asyncio.gather(*(_sample(manager, e) for e in engines), return_exceptions=True)
        await asyncio.sleep(max(0.1, SAMPLE_INTERVAL_S - (time.monotonic() - started)))


async def _sample(manager: Manager, engine: Engine) -> None:
    name = engine.spec.name
    status = engine.exit_status()
    if status is not None:
        if engine.state == "serving":  # died under us: say so, keep it visible as failed
            engine.fail(f"the engine exited with status {status} (log: {engine.log_path})")
            manager.events.error(f"generation {engine.generation} exited with status {status}", name)
        return
    try:
        health, scraped = await asyncio.gather(
            manager.client.get(f"{engine.base_url}/health", timeout=5),
            manager.client.get(f"{engine.base_url}/metrics", timeout=5),
        )
    except httpx.HTTPError as error:
        _set_health(manager, engine, False, f"{type(error).__name__}: {error}")
        return
    _set_health(manager, engine, health.status_code == 200, f"/health answered {health.status_code}")
    if scraped.status_code == 200 and engine.state == "serving":
        snapshot = parse_metrics(scraped.text, time.time())
        ring = manager.metrics.get(name)
        if ring is not None:
            ring.add(sample(engine.last_snapshot, snapshot))  # type: ignore[arg-type]
        engine.last_snapshot = snapshot


def _set_health(manager: Manager, engine: Engine, healthy: bool, why: str) -> None:
    if engine.state != "serving" or healthy == engine.healthy:
        return
    engine.healthy = healthy
    if healthy:
        manager.events.info(f"generation {engine.generation} healthy again", engine.spec.name)
    else:
        manager.events.warning(f"generation {engine.generation} unhealthy: {why}", engine.spec.name)
