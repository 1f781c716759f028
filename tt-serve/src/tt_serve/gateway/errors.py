"""What the gateway's admin operations answer: their error, a swap's result, the args they show."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from tt_serve.gateway.secrets import redact_args

if TYPE_CHECKING:
    from tt_serve.gateway.engine import Engine

OVERLAP, STOP_THEN_START = "overlap", "stop-then-start"


class GatewayError(Exception):
    """An admin request that cannot be done: HTTP ``status`` and an OpenAI-style error ``kind``."""

    def __init__(self, status: int, message: str, kind: str = "BadRequestError") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


@dataclasses.dataclass(frozen=True)
class SwapResult:
    engine: Engine
    mode: str  # OVERLAP or STOP_THEN_START
    downtime_s: float  # how long the model had no serving engine (0 for an overlap)


def shown_args(engine: Engine) -> list[str]:
    return redact_args(engine.spec.engine_args)
