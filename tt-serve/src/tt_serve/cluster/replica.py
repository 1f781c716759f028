"""One replica of a gateway model on a Ray node: the engine tt-serve runs on one host, behind Ray Serve.

The replica's constructor prepares the engine on its own host (``preparation.prepare``: the backend's
interpreter and checks are that host's) and starts it (``engine.Engine``, a child process on a loopback
port) with the replica's environment, where Ray has set ``TT_VISIBLE_DEVICES`` to the cards it gave this
replica. Requests arriving through Ray Serve's proxy are relayed to it as they come (streams chunk by
chunk). ``check_health`` is Ray Serve's health check: a dead engine or a failing ``/health`` makes Ray
replace the replica. ``GET <prefix>/_replica`` tells where the replica runs (for operators and tests).
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from tt_serve.gateway.cards import MESH_DEVICE, VISIBLE_DEVICES, discover, mesh_for
from tt_serve.gateway.engine import Engine
from tt_serve.gateway.environment import EngineEnvRule
from tt_serve.gateway.preparation import prepare, prepare_model_folder
from tt_serve.gateway.secrets import Redactor
from tt_serve.gateway.settings import ModelSpec

REPLICA_PATH = "/_replica"
REPLICA_HEADER = "x-tt-serve-replica"
_DROP = {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "upgrade"}


def spec_from_dict(data: dict[str, Any]) -> ModelSpec:
    cards = data.get("cards")
    return ModelSpec(
        name=data["name"],
        model=data["model"],
        backend=data.get("backend"),
        engine_args=tuple(data.get("engine_args", ())),
        tt=dict(data.get("tt", {})),
        env=dict(data.get("env", {})),
        cards=tuple(cards) if isinstance(cards, list) else cards,
        replicas=int(data.get("replicas", 1)),
    )


def _mesh_env(env: dict[str, str]) -> dict[str, str]:
    """MESH_DEVICE named from the boards of the cards Ray gave this replica, when the model sets none."""
    if MESH_DEVICE in env or not env.get(VISIBLE_DEVICES):
        return {}
    ids = {int(i) for i in env[VISIBLE_DEVICES].split(",") if i.strip().isdigit()}
    mesh = mesh_for([card for card in discover() if card.id in ids])
    return {MESH_DEVICE: mesh} if mesh else {}


class EngineReplica:
    async def __init__(  # type: ignore[misc]  # Ray Serve awaits an async constructor
        self,
        spec: dict[str, Any],
        config_path: str | None,
        env_rule: dict[str, list[str]],
        start_timeout_s: float,
    ) -> None:
        self.spec = spec_from_dict(spec)
        rule = EngineEnvRule(drop=tuple(env_rule["drop"]), keep=tuple(env_rule["keep"]))
        redactor = Redactor([])
        prepared = await prepare(self.spec, Path(config_path) if config_path else None, rule, redactor)
        log_dir = Path(tempfile.mkdtemp(prefix=f"tt-serve-replica-{os.getpid()}-"))
        self.engine = Engine(self.spec, 1, log_dir, redactor)
        self.engine.prepared = prepared
        env = {**rule.apply(os.environ), **self.spec.env, **prepared.env_changes}
        env.update(_mesh_env(env))
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=5.0))
        await prepare_model_folder(prepared, env)
        await self.engine.start(start_timeout_s, self.client, env)
        self.visible_devices = env.get(VISIBLE_DEVICES)
        import ray

        self.node_id = ray.get_runtime_context().get_node_id()
        self.tag = f"node {self.node_id[:8]} pid {os.getpid()} cards {self.visible_devices or '-'}"

    def _where(self) -> dict[str, object]:
        return {
            "node_id": self.node_id,
            "host": socket.gethostname(),
            "replica_pid": os.getpid(),
            "engine_pid": self.engine.pid,
            "engine_port": self.engine.port,
            VISIBLE_DEVICES: self.visible_devices,
            "log": str(self.engine.log_path),
            "tag": self.tag,
        }

    async def __call__(self, request: Request) -> Response:
        path = request.url.path
        root = request.scope.get("root_path", "")
        if root and path.startswith(root):  # Ray Serve's proxy keeps the route prefix in the path
            path = path[len(root) :] or "/"
        if path == REPLICA_PATH:
            return JSONResponse(self._where())
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP}
        upstream = await self.client.send(
            self.client.build_request(
                request.method,
                self.engine.base_url + path,
                params=list(request.query_params.multi_items()),
                headers=headers,
                content=await request.body(),
            ),
            stream=True,
        )

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            finally:
                await upstream.aclose()

        out = {k: v for k, v in upstream.headers.items() if k.lower() not in _DROP | {"date", "server"}}
        out[REPLICA_HEADER] = self.tag  # which replica answered: Ray Serve's router spreads requests
        return StreamingResponse(relay(), status_code=upstream.status_code, headers=out)

    async def check_health(self) -> None:
        status = self.engine.exit_status()
        if status is not None:
            raise RuntimeError(f"the engine exited with status {status} (log: {self.engine.log_path})")
        answer = await self.client.get(f"{self.engine.base_url}/health", timeout=10)
        if answer.status_code != 200:
            raise RuntimeError(f"the engine's /health answered {answer.status_code}")

    async def __del__(self) -> None:
        engine = getattr(self, "engine", None)  # None: the constructor failed before the engine existed
        if engine is not None:
            await engine.stop()
