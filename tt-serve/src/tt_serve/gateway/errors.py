"""What the gateway's admin operations answer: their error, a swap's result, the args they show."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from tt_serve.gateway.secrets import redact_args

if TYPE_CHECKING:
    from tt_serve.gateway.engine import Engine

OVERLAP, STOP_THEN_START, ROLLING = "overlap", "stop-then-start", "rolling"


class GatewayError(Exception):
    """An admin request that cannot be done: HTTP ``status`` and an OpenAI-style error ``kind``."""

    def __init__(self, status: int, message: str, kind: str = "BadRequestError") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


@dataclasses.dataclass(frozen=True)
class SwapResult:
    engine: Engine
    mode: str  # OVERLAP, STOP_THEN_START or ROLLING (a cluster model's redeploy)
    downtime_s: float  # how long the model had no serving engine (0 for an overlap)


def shown_args(engine: Engine) -> list[str]:
    return redact_args(engine.spec.engine_args)
