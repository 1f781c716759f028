"""A quiet interpreter exit: no "nanobind: leaked ..." report from Triton when a server stops.

vLLM imports Triton (3.9, nanobind bindings) in its API server; at interpreter exit nanobind reports
every Triton object still alive: about forty lines after "Application shutdown complete." on every
Ctrl-C, which users read as a crash. They are module-level objects Triton never frees; nothing is
wrong. nanobind's switch for the report (``nanobind::detail::set_leak_warnings``) is not exported from
Triton's extension, so it cannot be turned off there.

What is done instead: an atexit hook, registered when vLLM loads the plugin (early, so it runs after
the hooks registered later: vLLM's and uvicorn's), flushes stderr and points it at /dev/null, only when
Triton's extension is loaded. What that hides is exactly what is written during interpreter
finalisation, after every atexit hook has run: leak reports of nanobind and pybind11 modules and
"Exception ignored in ..." lines of objects torn down with the interpreter. ``TT_VLLM_EXIT_REPORTS=show``
keeps them (for debugging a shutdown).
"""

from __future__ import annotations

import atexit
import os
import sys

from tt_vllm_plugin import envs

TRITON_EXTENSION = "triton._C.libtriton"
_installed = False


def silence_finalisation_reports() -> bool:
    """Send what the interpreter writes to stderr from here on to /dev/null; False when left alone."""
    if TRITON_EXTENSION not in sys.modules or envs.TT_VLLM_EXIT_REPORTS.get() == "show":
        return False
    try:
        sys.stderr.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    except (OSError, ValueError):  # stderr already closed: nothing to hide
        return False
    return True


def install() -> None:
    """Once per process."""
    global _installed
    if not _installed:
        atexit.register(silence_finalisation_reports)
        _installed = True
