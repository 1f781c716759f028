"""The plugin's logger.

vLLM resolves the platform (and so calls our ``register()``) before it configures its own logging, so
a logger under vLLM's namespace would drop the lines a user most needs: which platform activated, or
why it did not. The plugin's loggers therefore carry their own stderr handler, formatted like vLLM's
and honouring ``VLLM_LOGGING_LEVEL``.
"""

from __future__ import annotations

import logging
import os
import sys

_ROOT = "tt_vllm_plugin"
_FORMAT = "%(levelname)s %(asctime)s [%(name)s] %(message)s"
_DATE_FORMAT = "%m-%d %H:%M:%S"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (test runners swap and close it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _configure_root() -> logging.Logger:
    root = logging.getLogger(_ROOT)
    if not getattr(root, "_tt_configured", False):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(_FORMAT, _DATE_FORMAT))
        root.addHandler(handler)
        root.setLevel(os.environ.get("VLLM_LOGGING_LEVEL", "INFO").upper())
        root.propagate = False
        root._tt_configured = True  # type: ignore[attr-defined]
    return root


def get_logger(name: str) -> logging.Logger:
    """A logger under ``tt_vllm_plugin`` (pass ``__name__``)."""
    _configure_root()
    return logging.getLogger(name if name.startswith(_ROOT) else f"{_ROOT}.{name}")
