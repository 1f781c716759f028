"""The gateway's FastAPI application: the OpenAI front, /health, the admin API and the console."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from tt_serve.gateway.auth import check_admin
from tt_serve.gateway.manager import GatewayError, Manager
from tt_serve.gateway.paths import OPENAI_POST_ROUTES, DotSegmentGuard, served_routes_text
from tt_serve.gateway.proxy import forward, list_models, openai_error
from tt_serve.gateway.request_body import BodyTooLarge, read_body
from tt_serve.gateway.settings import ModelSpec, check_name, parse_cards, reserved_arg_problem

STATIC_DIR = Path(__file__).resolve().parent / "static"


def _admin_denied(token: str | None, request: Request) -> Response | None:
    denied = check_admin(token, request.headers.get("authorization"))
    if denied is None:
        return None
    kind = "AuthenticationError" if denied.status == 401 else "PermissionDeniedError"
    response = openai_error(denied.status, denied.message, kind)
    if denied.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


async def _json_object(request: Request, max_bytes: int) -> dict[str, Any]:
    """The admin request's JSON object, read up to the same ``gateway.max_request_bytes`` as an OpenAI
    request's (an admin body is a few hundred bytes; nothing a client sends is read without a bound)."""
    try:
        raw = await read_body(request, max_bytes)
    except BodyTooLarge as error:
        raise GatewayError(413, str(error), "RequestTooLargeError") from None
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise GatewayError(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise GatewayError(400, "the request body must be a JSON object")
    return body


def _optional_string(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise GatewayError(422, f"{key!r} must be a non-empty string, got {value!r}")
    return value


def _engine_args(body: dict[str, Any]) -> list[str] | None:
    value = body.get("engine_args")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise GatewayError(422, f"'engine_args' must be a list of strings, got {value!r}")
    problem = reserved_arg_problem(value)
    if problem:
        raise GatewayError(422, problem)
    return value


def _tt(body: dict[str, Any]) -> dict[str, Any] | None:
    value = body.get("tt")
    if value is not None and not isinstance(value, dict):
        raise GatewayError(422, f"'tt' must be an object of TT options, got {value!r}")
    return value


def _cards(body: dict[str, Any]) -> int | tuple[int, ...] | None:
    if body.get("cards") is None:
        return None
    try:
        return parse_cards(body["cards"])
    except ValueError as error:
        raise GatewayError(422, f"'cards' {error}") from None


def create_app(manager: Manager, admin_token: str | None) -> FastAPI:
    read_only = not admin_token
    manager.redactor.add(admin_token)  # e.g. pasted into an engine argument by mistake: never shown

    def is_admin(request: Request) -> bool:
        return bool(admin_token) and check_admin(admin_token, request.headers.get("authorization")) is None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await manager.start()
        try:
            yield
        finally:
            await manager.close()

    app = FastAPI(title="tt-serve gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(DotSegmentGuard)  # before routing: no dot segment reaches a route, let alone an engine

    @app.exception_handler(GatewayError)
    async def gateway_error(_request: Request, error: GatewayError) -> Response:
        return openai_error(error.status, manager.redactor.text(error.message), error.kind)

    # ---- OpenAI front: an explicit list of routes (paths.py says which, and why) -----------------
    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, object]:
        return await list_models(manager, request.headers.get("authorization"))

    def relay(route: str):  # noqa: ANN202 - a FastAPI endpoint
        async def endpoint(request: Request) -> Response:
            return await forward(manager, request, route)

        return endpoint

    for route in OPENAI_POST_ROUTES:
        app.add_api_route(route, relay(route), methods=["POST"])

    @app.api_route("/v1/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def not_served(path: str, request: Request) -> Response:
        return openai_error(
            404,
            f"{request.method} /v1/{path} is not served by this gateway; it serves {served_routes_text()}",
            "NotFoundError",
        )

    @app.get("/health")
    async def health() -> Response:
        ok, body = manager.health()
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/health/{name}")
    async def model_health(name: str) -> Response:
        status, body = manager.model_health(name)
        return JSONResponse(body, status_code=status)

    # ---- read API --------------------------------------------------------------------------------
    @app.get("/admin/api/state")
    async def state(request: Request) -> dict[str, object]:
        # Open to read (the console, monitoring): secrets are redacted everywhere; the end of a failed
        # engine's log (which may quote prompts or values no rule recognises) only with the admin token.
        return manager.state(read_only, with_logs=is_admin(request))

    @app.get("/admin/api/backends")
    async def backends() -> dict[str, object]:
        from tt_serve.gateway.backends import backends_report

        return await backends_report(manager.config_path, manager.settings.engine_env)

    @app.get("/admin/api/metrics")
    async def metrics() -> dict[str, object]:
        return manager.metrics_json()

    @app.get("/admin/api/events")
    async def events() -> dict[str, object]:
        return {"events": manager.events.as_list()}

    # ---- admin write API -------------------------------------------------------------------------
    @app.post("/admin/api/models", status_code=201)
    async def add_model(request: Request) -> Response:
        if (denied := _admin_denied(admin_token, request)) is not None:
            return denied
        body = await _json_object(request, manager.settings.max_request_bytes)
        problem = check_name(body.get("name"))
        if problem:
            raise GatewayError(422, f"'name' {problem}")
        model = _optional_string(body, "model")
        if model is None:
            raise GatewayError(422, "'model' is required (an alias, a local folder or a Hugging Face id)")
        spec = ModelSpec(
            name=body["name"],
            model=model,
            backend=_optional_string(body, "backend"),
            engine_args=tuple(_engine_args(body) or ()),
            tt=_tt(body) or {},
            cards=_cards(body),
        )
        engine = await manager.add(spec)
        return JSONResponse(engine.as_dict(with_log=True), status_code=201)

    @app.delete("/admin/api/models/{name:path}")
    async def remove_model(name: str, request: Request) -> Response:
        if (denied := _admin_denied(admin_token, request)) is not None:
            return denied
        await manager.remove(name)
        return JSONResponse({"removed": name})

    @app.post("/admin/api/models/{name:path}/swap")
    async def swap_model(name: str, request: Request) -> Response:
        if (denied := _admin_denied(admin_token, request)) is not None:
            return denied
        body = await _json_object(request, manager.settings.max_request_bytes)
        unknown = sorted(set(body) - {"backend", "engine_args", "model", "cards", "replicas"})
        if unknown:
            raise GatewayError(
                422, f"unknown key {unknown[0]!r}; a swap takes backend, engine_args, model, cards, replicas"
            )
        replicas = body.get("replicas")
        if replicas is not None and (
            isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1
        ):
            raise GatewayError(422, f"'replicas' must be a whole number, 1 or more, got {replicas!r}")
        swapped = await manager.swap(
            name,
            backend=_optional_string(body, "backend"),
            engine_args=_engine_args(body),
            model=_optional_string(body, "model"),
            cards=_cards(body),
            replicas=replicas,
        )
        entry = swapped.engine.as_dict(with_log=True)
        entry["swap"] = {"mode": swapped.mode, "downtime_s": round(swapped.downtime_s, 2)}
        return JSONResponse(entry)

    # ---- console ---------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        return RedirectResponse("/ui")

    @app.api_route("/ui", methods=["GET", "HEAD"], include_in_schema=False)
    async def console() -> Response:
        index = STATIC_DIR / "index.html"
        if not index.is_file():
            return openai_error(404, f"the console is not installed ({index} is missing)", "NotFoundError")
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="ui-static")
    return app
