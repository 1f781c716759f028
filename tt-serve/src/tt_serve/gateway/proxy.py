"""The OpenAI front: route each request by its JSON ``model`` to that model's current engine.

The upstream response is relayed chunk by chunk as it arrives (``aiter_raw``), so Server-Sent Events
reach the client token by token, not buffered. Each relayed request holds a lease on its engine until
the last chunk is sent or the client goes away: that count is what a swap waits for before it stops
the old engine.

While a model's engine starts, its requests are answered 503 with ``Retry-After`` and the start-up
progress, or (``hold_requests_s``) held until it serves, up to that long. A body over
``max_request_bytes`` is answered 413 before it is routed (``request_body.py``); any other body, images
included, goes to the engine byte for byte.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from tt_serve.gateway.engine import Engine, Lease
from tt_serve.gateway.manager import Manager
from tt_serve.gateway.request_body import BodyTooLarge, read_body

ENGINE_HEADER = "x-tt-serve-engine"  # "<name>/<generation>/<pid>": which engine answered
# Hop-by-hop (RFC 9110 7.6.1) or recomputed by the server that sends the message on.
_DROP_REQUEST = {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "upgrade"}
_DROP_RESPONSE = _DROP_REQUEST - {"host"} | {"date", "server"}


def openai_error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)


async def _relay(upstream: httpx.Response, lease: Lease) -> AsyncIterator[bytes]:
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    finally:
        lease.release()
        await upstream.aclose()


async def _finish(upstream: httpx.Response, lease: Lease) -> None:
    lease.release()  # idempotent: also covers a client that left before the body started
    await upstream.aclose()


def loading(manager: Manager, engine: Engine) -> JSONResponse:
    """503 for a model whose engine is starting: when to retry, and how far the start has come."""
    progress = engine.progress_dict()
    retry = manager.retry_after(engine)
    doing = f"waiting for {engine.waiting_for}" if "waiting_for" in progress else progress["label"]
    message = (
        f"the model `{engine.spec.name}` is loading (generation {engine.generation}: {doing}; "
        f"{progress['elapsed_s']:.0f} s so far); retry after {retry} s"
    )
    return JSONResponse(
        {"error": {"message": message, "type": "ServiceUnavailableError", "code": 503}, "progress": progress},
        status_code=503,
        headers={"Retry-After": str(retry)},
    )


async def _send(manager: Manager, engine: Engine, upstream_request: httpx.Request) -> httpx.Response | None:
    """Send to the engine; None if it lost every replica before answering (a cluster engine whose node
    died: Ray Serve would hold the request until a replacement runs, however long that takes)."""
    lost: asyncio.Event | None = getattr(engine, "replicas_lost", None)
    if lost is None:
        return await manager.client.send(upstream_request, stream=True)
    sending = asyncio.ensure_future(manager.client.send(upstream_request, stream=True))
    waiting = asyncio.ensure_future(lost.wait())
    try:
        await asyncio.wait({sending, waiting}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
    if sending.done():
        return sending.result()
    sending.cancel()
    await asyncio.gather(sending, return_exceptions=True)
    return None


async def forward(manager: Manager, request: Request, route: str) -> Response:
    """Relay a request for one of paths.OPENAI_POST_ROUTES (``route``) to its model's engine."""
    try:
        body = await read_body(request, manager.settings.max_request_bytes)
    except BodyTooLarge as error:
        return openai_error(413, str(error), "RequestTooLargeError")
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        return openai_error(400, "the request body is not valid JSON", "BadRequestError")
    name = payload.get("model") if isinstance(payload, dict) else None
    if not isinstance(name, str) or not name:
        return openai_error(400, 'the request body must name a model ("model": ...)', "BadRequestError")
    engine = manager.route(name)
    if engine is None:
        known = ", ".join(sorted(manager.current)) or "none"
        return openai_error(
            404, f"The model `{name}` does not exist. Models served here: {known}.", "NotFoundError"
        )
    if engine.state == "starting" and manager.settings.hold_requests_s > 0:
        engine = await manager.wait_while_loading(name, manager.settings.hold_requests_s)
        if engine is None:
            return openai_error(404, f"The model `{name}` was removed.", "NotFoundError")
    if engine.state == "starting":
        return loading(manager, engine)
    if engine.state != "serving":
        why = engine.last_error or "not serving"
        return openai_error(503, f"the model `{name}` is {engine.state}: {why}", "ServiceUnavailableError")
    lease = engine.acquire()  # no await between route() and here: a swap cannot slip in between
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP_REQUEST}
    upstream_request = manager.client.build_request(
        request.method,
        engine.base_url + route,  # the gateway's own constant, never the client's path
        params=list(request.query_params.multi_items()),
        headers=headers,
        content=body,
    )
    try:
        upstream = await _send(manager, engine, upstream_request)
    except (httpx.HTTPError, asyncio.CancelledError) as error:
        lease.release()
        if isinstance(error, asyncio.CancelledError):
            raise
        return openai_error(502, f"the engine of `{name}` did not answer: {error}", "BadGatewayError")
    if upstream is None:  # its replicas went away before it answered: loading again
        lease.release()
        return loading(manager, engine)
    out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _DROP_RESPONSE}
    out_headers[ENGINE_HEADER] = f"{name}/{engine.generation}/{engine.pid}"
    return StreamingResponse(
        _relay(upstream, lease),
        status_code=upstream.status_code,
        headers=out_headers,
        background=BackgroundTask(_finish, upstream, lease),
    )


async def list_models(manager: Manager, authorization: str | None) -> dict[str, object]:
    """Every serving model as its engine describes it (``id`` is the gateway's name: engines are named so).

    The client's Authorization goes along, as it does with every relayed request: an engine started with
    ``--api-key`` describes itself only to a client with its key (to others it is listed by name).
    """
    engines = [e for e in manager.current.values() if e.state == "serving"]
    headers = {"Authorization": authorization} if authorization else {}

    async def one(engine: Engine) -> list[dict[str, object]]:
        try:
            response = await manager.client.get(f"{engine.base_url}/v1/models", headers=headers, timeout=5)
            data = response.json()["data"] if response.status_code == 200 else []
        except (httpx.HTTPError, ValueError, KeyError):
            data = []
        return data or [{"id": engine.spec.name, "object": "model", "owned_by": "tt-serve"}]

    found = await asyncio.gather(*(one(e) for e in engines))
    return {"object": "list", "data": [entry for entries in found for entry in entries]}
