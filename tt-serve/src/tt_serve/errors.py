"""Exit statuses and the one exception type tt-serve's steps raise to stop with a message."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Distinct statuses so scripts and CI can tell why tt-serve refused to start."""

    OK = 0
    PROBLEMS = 1  # doctor found something to fix
    USAGE = 2  # argparse's own status for bad command lines
    CONFIG = 3  # the server config file is unreadable or invalid
    RESOLUTION = 4  # no backend could be decided, or an unknown backend was named
    NOT_INSTALLED = 10
    PLUGIN_BROKEN = 11  # the plugin fails to import or to initialise
    VLLM_INCOMPATIBLE = 12
    HARDWARE_MISSING = 13
    UNTRUSTED = 14
    ENVIRONMENT = 15  # the environment would make vLLM ignore or mis-pick the plugin


class ServeError(Exception):
    """A problem that stops tt-serve: the message names the problem and the fix."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
