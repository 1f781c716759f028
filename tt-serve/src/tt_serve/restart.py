"""tt-serve's restart policy: ``--restart no|on-failure`` and ``--max-restarts N``.

Pure decisions, no processes: given how the server ended, restart it (after an exponential back-off)
or stop with its status. A server that tt-serve was asked to stop (SIGINT/SIGTERM/SIGHUP/SIGQUIT to
tt-serve) is never restarted, whatever its status.

A failure is any exit tt-serve did not ask for. vLLM 0.32's API server shuts down with status 0 when its
engine dies, whether from a model error (the plugin then also reports it in
``TT_VLLM_ENGINE_FAILURE_FILE``) or from the OOM killer's SIGKILL of the engine core (nobody reports
anything), so the status alone cannot tell a crash from a stop: an unrequested exit with status 0 counts
as status 1. With ``on-failure`` tt-serve starts a fresh server, at most N times, waiting 1, 2, 4 ... s
(capped at 30 s) in between.
"""

from __future__ import annotations

from dataclasses import dataclass

from tt_serve import envs
from tt_serve.pycompat import StrEnum

ATTEMPT_ENV = envs.TT_SERVE_ATTEMPT.name  # 1 for the first server, 2 for the first restart, ...
# Where the plugin's worker writes why its engine failed.
FAILURE_FILE_ENV = envs.TT_VLLM_ENGINE_FAILURE_FILE.name
ENGINE_FAILED_STATUS = 1  # tt-serve's status when the server exited 0 without being asked to stop
DEFAULT_MAX_RESTARTS = 3


class RestartMode(StrEnum):
    NO = "no"
    ON_FAILURE = "on-failure"


@dataclass(frozen=True)
class RestartPolicy:
    mode: RestartMode = RestartMode.NO
    max_restarts: int = DEFAULT_MAX_RESTARTS
    initial_delay: float = 1.0  # seconds before the first restart
    factor: float = 2.0
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ValueError(f"--max-restarts must be 0 or more, not {self.max_restarts}")

    def delay(self, restart: int) -> float:
        """Seconds to wait before restart number ``restart`` (1-based)."""
        return min(self.max_delay, self.initial_delay * self.factor ** (restart - 1))

    def decide(
        self, status: int, restarts_done: int, stop_requested: bool, engine_failed: bool = False
    ) -> Decision:
        """What to do after the server ended with ``status`` (128+N when killed by signal N);
        ``engine_failed``: the plugin reported an engine failure during that server's life (which makes
        even a requested stop a failure: the engine died first)."""
        server_status = status
        if status == 0 and (engine_failed or not stop_requested):
            status = ENGINE_FAILED_STATUS
        if stop_requested or self.mode is RestartMode.NO:
            return Decision(Action.EXIT, status, server_status)
        if restarts_done >= self.max_restarts:
            return Decision(Action.GIVE_UP, status, server_status)
        restart = restarts_done + 1
        return Decision(Action.RESTART, status, server_status, restart=restart, delay=self.delay(restart))


class Action(StrEnum):
    EXIT = "exit"  # stop with the server's status
    RESTART = "restart"
    GIVE_UP = "give-up"  # failed again after the last allowed restart: stop with its status


@dataclass(frozen=True)
class Decision:
    action: Action
    status: int  # tt-serve's exit status for EXIT and GIVE_UP
    server_status: int  # what the server exited with
    restart: int = 0  # which restart this is (1-based), for RESTART
    delay: float = 0.0

    def message(self, max_restarts: int) -> str | None:
        """The line tt-serve prints on stderr for this decision (None: nothing to say)."""
        exited = f"tt-serve: server exited with status {self.server_status}"
        if self.server_status == 0 and self.status != 0:
            exited += " although nobody asked it to stop"
        if self.action is Action.RESTART:
            return f"{exited}; restarting in {self.delay:g} s (attempt {self.restart} of {max_restarts})"
        if self.action is Action.GIVE_UP:
            return (
                f"{exited}; giving up after {max_restarts} "
                f"restart{'s' if max_restarts != 1 else ''} (--max-restarts {max_restarts})"
            )
        if self.status != self.server_status:
            return f"{exited}; tt-serve exits with status {self.status} (a failure)"
        return None
