"""The gateway's event log: what happened to which model, newest last, bounded (the console shows it)."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

Level = Literal["info", "warning", "error"]
_LOG = logging.getLogger("tt_serve.gateway")
_LOG_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class EventLog:
    def __init__(self, size: int = 200, redact: Callable[[str], str] = str) -> None:
        self._events: deque[dict[str, object]] = deque(maxlen=size)
        self._redact = redact  # every message is shown (console, API, the gateway's log): no secret in it

    def add(self, level: Level, message: str, model: str | None = None) -> None:
        message = self._redact(message)
        self._events.append({"t": time.time(), "level": level, "model": model, "message": message})
        _LOG.log(_LOG_LEVELS[level], "%s%s", f"[{model}] " if model else "", message)

    def info(self, message: str, model: str | None = None) -> None:
        self.add("info", message, model)

    def warning(self, message: str, model: str | None = None) -> None:
        self.add("warning", message, model)

    def error(self, message: str, model: str | None = None) -> None:
        self.add("error", message, model)

    def as_list(self) -> list[dict[str, object]]:
        return list(self._events)
