"""Start-up phases, told to whoever started the server (tt-serve) through ``TT_SERVE_STATUS_FILE``.

On a Tenstorrent card an engine takes minutes to start (weights, KV cache, kernel compilation and trace
capture in warm-up), and an operator looking at a 503 wants to know which of these is under way. The
worker appends one JSON line per phase as it enters it; tt-serve and its gateway read the file (they
own the phases before and after the engine's: resolving, starting the process, ready). The phase names
are a protocol with ``tt_serve.progress``; ``tests/test_shared_protocol.py`` keeps the two in step.
Nothing is written when the variable is unset (a server not started by tt-serve).
"""

from __future__ import annotations

import json
import os
import time

from tt_vllm_plugin import envs
from tt_vllm_plugin.log import get_logger
from tt_vllm_plugin.pycompat import StrEnum

logger = get_logger(__name__)


class EnginePhase(StrEnum):
    OPENING_DEVICE = "opening_device"
    LOADING_WEIGHTS = "loading_weights"
    ALLOCATING_KV_CACHE = "allocating_kv_cache"
    WARMING_UP = "warming_up"


def report_phase(phase: EnginePhase, detail: str = "") -> None:
    """Append ``{"phase", "time", "detail"}`` to the status file, if tt-serve asked for one."""
    path = envs.TT_SERVE_STATUS_FILE.get()
    if not path:
        return
    line = json.dumps({"phase": phase.value, "time": time.time(), "detail": detail, "pid": os.getpid()})
    try:
        with open(path, "a") as out:
            out.write(line + "\n")
    except OSError as problem:
        logger.warning(
            "Could not write the start-up phase to %s=%s: %s", envs.TT_SERVE_STATUS_FILE, path, problem
        )
