"""The admin bearer token: without one configured the gateway is read-only; compared in constant time."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from tt_serve import envs

TOKEN_ENV = envs.TT_SERVE_ADMIN_TOKEN.name
READ_ONLY_MESSAGE = "the gateway is read-only: start it with --admin-token or TT_SERVE_ADMIN_TOKEN"


@dataclass(frozen=True)
class Denied:
    status: int  # 401: no credentials; 403: wrong ones, or a read-only gateway
    message: str


def check_admin(configured: str | None, authorization: str | None) -> Denied | None:
    """None when ``authorization`` (the request's Authorization header) carries the configured token."""
    if not configured:
        return Denied(403, READ_ONLY_MESSAGE)
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return Denied(401, "admin operations need the header 'Authorization: Bearer <admin token>'")
    # compare_digest: the time taken does not depend on how much of the token was right.
    if not hmac.compare_digest(given.strip().encode(), configured.encode()):
        return Denied(403, "wrong admin token")
    return None
