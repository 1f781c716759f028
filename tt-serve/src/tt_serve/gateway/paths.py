"""Which client paths reach an engine, and the guard that refuses dot segments before any routing.

Only these OpenAI routes are forwarded, each to the same path on the model's engine (the upstream URL is
built from the constant here, never from the client's path):

- ``POST /v1/chat/completions`` and ``POST /v1/completions``: generation, what every plugin engine
  serves. ``GET /v1/models`` is answered by the gateway itself (merged from the engines).

Deliberately not forwarded, although vLLM's server has them: ``/v1/responses`` (its stored responses and
``previous_response_id`` live inside one engine process and vanish on a swap; ``GET /v1/responses/{id}``
names no model to route by), ``/v1/embeddings`` and the pooling, scoring, audio and Anthropic routes
(other model kinds and APIs than the generation models the plugins serve), and everything outside
``/v1`` (``/tokenize``, ``/start_profile``, ``/scale_elastic_ep``, the dev-mode routes ...), which are
the engine operator's, unauthenticated.

A path with a ``.`` or ``..`` segment, written plainly or percent-encoded any number of times
(``%2e%2e``, ``%2E%2E``, ``%252e%252e``, ``.%2e``), is refused with 400 by :class:`DotSegmentGuard`
for every route of the gateway, admin ones included.
"""

from __future__ import annotations

from urllib.parse import unquote

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

OPENAI_POST_ROUTES = ("/v1/chat/completions", "/v1/completions")
GATEWAY_GET_ROUTES = ("/v1/models",)
MAX_DECODING_ROUNDS = 4  # deeper than any real client encodes; deeper still is refused outright


def served_routes_text() -> str:
    posts = ", ".join(f"POST {route}" for route in OPENAI_POST_ROUTES)
    return f"{posts} and {', '.join(f'GET {route}' for route in GATEWAY_GET_ROUTES)}"


def dot_segment_problem(raw_path: str) -> str | None:
    """Why ``raw_path`` (as sent, percent-encoding intact) is refused, or None."""
    text = raw_path
    for _ in range(MAX_DECODING_ROUNDS + 1):
        segments = text.replace("\\", "/").split("/")
        if any(segment in (".", "..") for segment in segments):
            return f"the path {raw_path!r} has a dot segment ('.' or '..', possibly percent-encoded)"
        decoded = unquote(text)
        if decoded == text:
            return None
        text = decoded
    return f"the path {raw_path!r} is percent-encoded more than {MAX_DECODING_ROUNDS} times over"


class DotSegmentGuard:
    """ASGI middleware: a 400 for a path with dot segments, before routing sees (or decodes) it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path") or scope["path"].encode()
            problem = dot_segment_problem(raw.decode("latin-1"))
            if problem is not None:
                response = JSONResponse(
                    {
                        "error": {
                            "message": f"{problem}; the gateway serves {served_routes_text()}",
                            "type": "BadRequestError",
                            "code": 400,
                        }
                    },
                    status_code=400,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
