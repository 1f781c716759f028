"""A test hook that makes the model fail inside a chosen step: ``TT_VLLM_FAULT_INJECT``.

    TT_VLLM_FAULT_INJECT="step=N[,mode=raise|exit][,attempt=K]"

- ``step=N``: the N-th step that calls the model (1-based; steps with nothing to run do not count).
- ``mode=raise`` (default): raise ``InjectedFault`` in that step, where a model error would surface.
  ``mode=exit``: end the engine process at once (``os._exit(3)``), as a crashed device driver would.
- ``attempt=K``: only when ``TT_SERVE_ATTEMPT`` (set by ``tt-serve serve --restart``) is K, so the fault
  hits the first life of a server and not the restarted one.

What vLLM 0.32 does with an exception in ``execute_model`` (measured): the engine core logs "EngineCore
encountered a fatal error" with the traceback, tells the API server it is dead and exits; requests in
flight end with HTTP 500 ("EngineCore encountered an issue. See stack trace (above) for the root
cause."), ``/health`` answers 503 until the API server shuts itself down (at once when a request saw
the error, else within its 5 s watchdog), and the API server then exits with status 0. Failing only
the requests of the faulting step is not possible through vLLM 0.32's runner interface:
``ModelRunnerOutput`` has no per-request error, and the scheduler's request-level error paths
(``FinishReason.ERROR``) belong to KV/EC connectors and grammars. So a model error is an engine failure.

Because that exit status is 0, the worker also writes the error to ``TT_VLLM_ENGINE_FAILURE_FILE`` when
that is set: tt-serve sets it for each server it starts, and so tells an engine failure from a normal
stop (it then exits non-zero, or restarts the server with ``--restart on-failure``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from tt_vllm_plugin import envs
from tt_vllm_plugin.log import get_logger
from tt_vllm_plugin.pycompat import StrEnum

FAULT_ENV = envs.TT_VLLM_FAULT_INJECT.name
ATTEMPT_ENV = envs.TT_SERVE_ATTEMPT.name
FAILURE_FILE_ENV = envs.TT_VLLM_ENGINE_FAILURE_FILE.name
EXIT_STATUS = 3  # mode=exit: the engine process's exit status

logger = get_logger(__name__)


class FaultMode(StrEnum):
    RAISE = "raise"
    EXIT = "exit"


class InjectedFault(RuntimeError):
    """The error ``mode=raise`` raises; its message names the hook so logs say it was deliberate."""


class FaultSpecError(ValueError):
    pass


@dataclass(frozen=True)
class FaultSpec:
    step: int
    mode: FaultMode = FaultMode.RAISE
    attempt: int | None = None

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """``"step=3,mode=exit,attempt=1"`` -> FaultSpec; anything else raises naming the problem."""
        usage = f'{FAULT_ENV} must look like "step=N[,mode=raise|exit][,attempt=K]"; got {text!r}'
        fields: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            if not sep or key.strip() not in {"step", "mode", "attempt"} or key.strip() in fields:
                raise FaultSpecError(f"{usage} (bad part {part!r})")
            fields[key.strip()] = value.strip()
        if "step" not in fields:
            raise FaultSpecError(f"{usage} (step=N is required)")
        try:
            mode = FaultMode(fields.get("mode", FaultMode.RAISE.value))
        except ValueError:
            raise FaultSpecError(f"{usage} (mode must be raise or exit)") from None
        step = _positive(fields["step"], "step", usage)
        attempt = _positive(fields["attempt"], "attempt", usage) if "attempt" in fields else None
        return cls(step=step, mode=mode, attempt=attempt)


def _positive(value: str, name: str, usage: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise FaultSpecError(f"{usage} ({name} must be a positive integer)")
    return int(value)


class FaultInjector:
    """Counts the model steps of one engine and fires the configured fault once, in the chosen step."""

    def __init__(self, spec: FaultSpec | None) -> None:
        self.spec = spec
        self.steps = 0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> FaultInjector:
        env = os.environ if environ is None else environ
        text = env.get(FAULT_ENV, "").strip()
        if not text:
            return cls(None)
        spec = FaultSpec.parse(text)
        if spec.attempt is not None and env.get(ATTEMPT_ENV, "1") != str(spec.attempt):
            logger.info("%s=%s ignored: this is attempt %s", FAULT_ENV, text, env.get(ATTEMPT_ENV, "1"))
            return cls(None)
        logger.warning("Fault injection armed: %s=%s", FAULT_ENV, text)
        return cls(spec)

    def before_model_step(self) -> None:
        """Call once per step that runs the model, before the model calls."""
        if self.spec is None:
            return
        self.steps += 1
        if self.steps != self.spec.step:
            return
        message = f"injected fault in model step {self.steps} ({FAULT_ENV}={_describe(self.spec)})"
        if self.spec.mode is FaultMode.EXIT:
            logger.error("%s: exiting the engine process with status %d", message, EXIT_STATUS)
            record_engine_failure(message)
            os._exit(EXIT_STATUS)
        raise InjectedFault(message)


_last_recorded: list[BaseException] = []  # the last error written, so one failure is one line


def record_engine_failure(error: BaseException | str) -> None:
    """Tell whoever started the server (tt-serve) why the engine failed, when it asked to know.

    The same exception can pass here twice (a step's output is finished by StepOutput, which records
    its error, inside the worker's execute_model, which records what it raises); it is written once.
    """
    path = os.environ.get(FAILURE_FILE_ENV)
    if not path:
        return
    if isinstance(error, BaseException):
        if _last_recorded and _last_recorded[0] is error:
            return
        _last_recorded[:] = [error]
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    try:
        with open(path, "a") as out:
            out.write(text.strip() + "\n")
    except OSError as problem:
        logger.warning("Could not write the engine failure to %s=%s: %s", FAILURE_FILE_ENV, path, problem)


def _describe(spec: FaultSpec) -> str:
    text = f"step={spec.step},mode={spec.mode.value}"
    return text + (f",attempt={spec.attempt}" if spec.attempt is not None else "")
