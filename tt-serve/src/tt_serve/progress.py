"""A server's start-up phases, read from (and, for tt-serve's own phases, written to) its status file.

tt-serve gives every server it starts ``TT_SERVE_STATUS_FILE``. tt-serve appends its own phases there
(resolving, starting the process), the plugin's worker appends the engine's as it enters them
(``tt_vllm_plugin.worker.startup_phases``: opening the device, loading weights, allocating the KV cache,
warming up / capturing traces), and whoever sees ``/health`` answer 200 appends ``ready``. One JSON
object per line: ``{"phase": ..., "time": <unix seconds>, "detail": ...}``. A plugin that writes
nothing (tt-xla's) simply stays in "starting the process" until it is ready. The phases come from what
the engine really does, never from timers.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from tt_serve.pycompat import StrEnum


class Phase(StrEnum):
    RESOLVING = "resolving"
    STARTING = "starting"
    OPENING_DEVICE = "opening_device"
    LOADING_WEIGHTS = "loading_weights"
    ALLOCATING_KV_CACHE = "allocating_kv_cache"
    WARMING_UP = "warming_up"
    READY = "ready"
    STOPPED = "stopped"


# The phases the plugin's worker writes (the protocol with tt_vllm_plugin.worker.startup_phases).
ENGINE_PHASES = (Phase.OPENING_DEVICE, Phase.LOADING_WEIGHTS, Phase.ALLOCATING_KV_CACHE, Phase.WARMING_UP)

LABELS = {
    Phase.RESOLVING: "resolving the backend and checking it",
    Phase.STARTING: "starting the server process",
    Phase.OPENING_DEVICE: "opening the device",
    Phase.LOADING_WEIGHTS: "loading weights",
    Phase.ALLOCATING_KV_CACHE: "allocating the KV cache",
    Phase.WARMING_UP: "warming up",
    Phase.READY: "ready",
    Phase.STOPPED: "stopped",
}


@dataclass(frozen=True)
class PhaseEvent:
    phase: Phase
    at: float  # unix seconds
    detail: str = ""

    @property
    def label(self) -> str:
        return LABELS[self.phase] + (f" ({self.detail})" if self.detail else "")


class StartupProgress:
    """One server life's status file: tt-serve's own phases written, everyone's read back in order."""

    def __init__(self, path: Path, started_at: float | None = None) -> None:
        self.path = path
        self.started_at = time.time() if started_at is None else started_at

    def record(self, phase: Phase, detail: str = "") -> None:
        line = json.dumps({"phase": phase.value, "time": time.time(), "detail": detail})
        with open(self.path, "a") as out:
            out.write(line + "\n")

    def events(self) -> list[PhaseEvent]:
        """Every complete line that names a known phase; a line still being written is skipped."""
        try:
            text = self.path.read_text()
        except OSError:
            return []
        found = []
        for line in text.splitlines():
            try:
                data = json.loads(line)
                event = PhaseEvent(Phase(data["phase"]), float(data["time"]), str(data.get("detail", "")))
            except (ValueError, KeyError, TypeError):
                continue
            found.append(event)
        return found

    def current(self) -> PhaseEvent | None:
        events = self.events()
        return events[-1] if events else None

    def as_dict(self, now: float | None = None) -> dict[str, object]:
        """What /health, 503 bodies, gateway-status and the console show."""
        now = time.time() if now is None else now
        events = self.events()
        last = events[-1] if events else None
        return {
            "phase": last.phase.value if last else None,
            "label": last.label if last else "not started",
            "elapsed_s": round(now - self.started_at, 1),
            "phase_elapsed_s": round(now - last.at, 1) if last else None,
            "history": [
                {"phase": e.phase.value, "label": e.label, "at_s": round(e.at - self.started_at, 1)}
                for e in events
            ],
        }
