"""A request body read up to the gateway's size limit (``gateway.max_request_bytes``).

An OpenAI request carries its images base64-encoded inside the JSON, so bodies can be large; the gateway
holds one whole body in memory before it relays it (it must read ``model`` to route), so the limit bounds
that memory. A declared ``Content-Length`` over the limit is refused before anything is read; a body sent
without one (chunked) is read until it passes the limit. Either way the rest of the body is read and
discarded (up to :data:`DRAIN_BYTES`), so the client, still sending, gets the 413 rather than a reset
connection.
"""

from __future__ import annotations

from fastapi import Request

LIMIT_KEY = "gateway.max_request_bytes"
DRAIN_BYTES = 256 * 2**20  # past this the connection is closed instead (a client that never stops)


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the request body is larger than this gateway's limit of {limit} bytes ({_readable(limit)}): "
            f"send less (fewer or smaller images), or raise {LIMIT_KEY} in the gateway's config file"
        )


def _readable(size: int) -> str:
    return f"{size / 2**20:g} MiB" if size >= 2**20 else f"{size / 2**10:g} KiB"


def _declared_length(request: Request) -> int | None:
    try:
        return int(request.headers["content-length"])
    except (KeyError, ValueError):
        return None


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or :class:`BodyTooLarge` once it is (or says it is) over ``limit`` bytes."""
    declared = _declared_length(request)
    chunks: list[bytes] = []
    size = 0
    too_large = declared is not None and declared > limit
    async for chunk in request.stream():
        size += len(chunk)
        if too_large or size > limit:
            too_large = True
            if size > limit + DRAIN_BYTES:
                break
            continue
        chunks.append(chunk)
    if too_large:
        raise BodyTooLarge(limit)
    return b"".join(chunks)
