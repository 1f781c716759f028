"""``tt-serve serve`` prints each start-up phase of its server once, as the server enters it.

A thread reads the server's status file (``progress.py``: tt-serve's own phases and those the plugin's
worker writes) and, once a phase is there, asks the server's ``/health``; the first 200 is "ready".
On a card the phases take minutes each; the lines tell an operator which one is under way.
"""

from __future__ import annotations

import sys
import threading
import urllib.error
import urllib.request
from typing import TextIO

from tt_serve.progress import Phase, StartupProgress

POLL_S = 0.5


class StartupWatch:
    """Prints ``tt-serve: [12.3 s] loading weights`` lines for one server life; stop() ends it."""

    def __init__(self, progress: StartupProgress, url: str, out: TextIO = sys.stderr) -> None:
        self.progress, self.url, self.out = progress, url, out
        self._stopped = threading.Event()
        self._printed = 0
        self._thread = threading.Thread(target=self._watch, name="tt-serve-startup-watch", daemon=True)

    def start(self) -> StartupWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def _print_new(self) -> None:
        events = self.progress.events()
        for event in events[self._printed :]:
            elapsed = event.at - self.progress.started_at
            print(f"tt-serve: [{elapsed:6.1f} s] {event.label}", file=self.out, flush=True)
        self._printed = len(events)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def _watch(self) -> None:
        while not self._stopped.wait(POLL_S):
            self._print_new()
            if self._printed and self._healthy():
                self.progress.record(Phase.READY, self.url.removesuffix("/health"))
                self._print_new()
                return
